/**
 * Child process of `token-service`: revokd's HTTP server on a loopback port, wired as `revokd serve` wires it
 * (`createRuntime` + `buildApp`), with rate limits off and log level `warn` (no per-request log lines;
 * oidc-provider logs none either). `argv[2]` is the store: a folder for the embedded store (a SQLite file in it,
 * WAL, durable commits), or a `postgres://` URL for the cluster store (one node; the database already migrated).
 *
 * IPC: sends `{ port }` once listening; exits when the parent disconnects or on SIGTERM.
 */
import { join } from 'node:path';
import { parseConfig } from '../../packages/server/src/config/load.ts';
import { hashSecret } from '../../packages/server/src/crypto/secrets.ts';
import { buildApp } from '../../packages/server/src/http/app.ts';
import { createRuntime } from '../../packages/server/src/runtime.ts';

const [location, api, clientId, secret] = process.argv.slice(2) as [string, string, string, string];
const store = /^postgres(ql)?:\/\//.test(location)
  ? { kind: 'postgres', url: location }
  : { kind: 'sqlite', path: join(location, 'revokd.db') };

const config = parseConfig({
  issuer: 'http://127.0.0.1',
  http: { host: '127.0.0.1', port: 0 },
  store,
  rateLimit: { enabled: false },
  log: { level: 'warn' },
  clients: [
    {
      id: clientId,
      secretHash: hashSecret(secret),
      grants: ['client_credentials', 'refresh_token', 'urn:ietf:params:oauth:grant-type:token-exchange'],
      audiences: [api],
      scopes: ['api:read'],
    },
  ],
});

const runtime = await createRuntime(config, { follow: true });
const app = buildApp(runtime);
await app.listen({ host: config.http.host, port: 0 });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('no port');
process.send?.({ port: address.port });

let closing = false;
async function shutdown(): Promise<void> {
  if (closing) return;
  closing = true;
  app.server.closeAllConnections();
  await app.close();
  await runtime.close();
  process.exit(0);
}
process.on('disconnect', () => void shutdown());
process.once('SIGTERM', () => void shutdown());
