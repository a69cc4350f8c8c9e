/**
 * The shared adapter suite against plain node:http and `@revokd/guard/node`: `withGuard` for most routes;
 * `guardRequest` + `sendRejection` by hand for routes with a scope step (which becomes the `scopes` option) and
 * for the route without options.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Guard } from '@revokd/guard';
import {
  type GuardMiddlewareOptions,
  guardRequest,
  type RevokdAuth,
  sendRejection,
  withGuard,
} from '@revokd/guard/node';
import { runAdapterSuite, whoami } from './adapter-cases.ts';

type Listener = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

function json(res: ServerResponse, auth: RevokdAuth): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(whoami(auth)));
}

/** The framework-free decision, by hand. */
function byHand(guard: Guard, options: GuardMiddlewareOptions | undefined): Listener {
  return async (req, res) => {
    const decision = guardRequest(guard, req, options);
    if (!decision.ok) return sendRejection(res, decision, options);
    json(res, decision);
  };
}

runAdapterSuite('node', async (routes) => {
  const listeners = new Map<string, Listener>();
  for (const route of routes) {
    if (route.requireScope) {
      const options = { ...route.options, scopes: [route.requireScope.scope] };
      listeners.set(route.path, byHand(route.guard, options));
    } else if (route.options === undefined) {
      listeners.set(route.path, byHand(route.guard, undefined));
    } else {
      listeners.set(
        route.path,
        withGuard(route.guard, (_req, res, auth) => json(res, auth), route.options),
      );
    }
  }
  const server = createServer((req, res) => {
    const listener = listeners.get(req.url ?? '');
    if (listener) void listener(req, res);
    else res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
});
