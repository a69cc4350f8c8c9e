/** A real guard against the in-process test server (harness.ts), listening on a loopback port. */
import type { AddressInfo } from 'node:net';
import { createGuard, type Guard, type GuardOptions } from '@revokd/guard';
import { API, ISSUER, type TestServer } from './harness.ts';

/** Makes the test server listen on a free loopback port and returns its base URL. */
export async function listenOnLoopback(server: TestServer): Promise<string> {
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = server.app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

/**
 * A guard that follows the server at `serverUrl`, authenticated as the harness's resource server, with short
 * reconnect delays. The harness issuer (https://revokd.test) is not where the server listens, so the JWKS is named
 * directly (default: `${serverUrl}/jwks.json`).
 */
export function guardFor(server: TestServer, serverUrl: string, options: Partial<GuardOptions> = {}): Guard {
  return createGuard({
    issuer: ISSUER,
    audience: API,
    clientId: server.resourceServer.id,
    clientSecret: server.resourceServer.secret,
    serverUrl,
    jwksUri: `${serverUrl}/jwks.json`,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    readyTimeoutMs: 10_000,
    ...options,
  });
}
