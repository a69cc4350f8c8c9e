/** The shared adapter suite against Hono 4 (on @hono/node-server) and `@revokd/guard/hono`. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { honoGuard, type RevokdEnv, requireScope } from '@revokd/guard/hono';
import { Hono } from 'hono';
import { runAdapterSuite, whoami } from './adapter-cases.ts';

runAdapterSuite('hono', async (routes) => {
  const app = new Hono<RevokdEnv>();
  for (const route of routes) {
    const guard = honoGuard(route.guard, route.options);
    if (route.requireScope) {
      const scope = requireScope(route.requireScope.scope, route.requireScope.options);
      app.get(route.path, guard, scope, (c) => c.json(whoami(c.get('auth'))));
    } else {
      app.get(route.path, guard, (c) => c.json(whoami(c.get('auth'))));
    }
  }

  const { server, port } = await new Promise<{ server: Server; port: number }>((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
      resolve({ server: server as Server, port: info.port }),
    );
  });
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
});
