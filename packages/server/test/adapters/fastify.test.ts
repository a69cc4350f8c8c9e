/**
 * The shared adapter suite against Fastify 5 and `@revokd/guard/fastify`: routes without a scope step are each
 * protected by the plugin in their own context; the others by route-level `onRequest` hooks.
 */
import type { AddressInfo } from 'node:net';
import { fastifyGuard, requireScope, revokdFastify } from '@revokd/guard/fastify';
import Fastify from 'fastify';
import { runAdapterSuite, whoami } from './adapter-cases.ts';

runAdapterSuite('fastify', async (routes) => {
  const app = Fastify();
  for (const route of routes) {
    if (route.requireScope) {
      const onRequest = [
        fastifyGuard(route.guard, route.options),
        requireScope(route.requireScope.scope, route.requireScope.options),
      ];
      app.get(route.path, { onRequest }, async (request) => whoami(request.auth));
    } else {
      // The plugin protects every route of the context it is registered in.
      app.register(async (scope) => {
        await scope.register(revokdFastify, { guard: route.guard, ...route.options });
        scope.get(route.path, async (request) => whoami(request.auth));
      });
    }
  }
  // A route outside every protected context stays open, and its request slot empty.
  app.get('/open', async (request) => ({ auth: request.auth ?? null }));

  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const open = await fetch(`${url}/open`);
  if (open.status !== 200 || (await open.text()) !== '{"auth":null}') throw new Error('the plugin leaked');
  return { url, close: () => app.close() };
});
