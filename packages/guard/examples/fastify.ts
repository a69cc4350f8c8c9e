/** Fastify 5: `fastifyGuard` as a route hook, or `revokdFastify` for a whole context; the token is `request.auth`. */
import { fastifyGuard, requireScope, revokdFastify } from '@revokd/guard/fastify';
import Fastify from 'fastify';
import { guard } from './guard.ts';

const app = Fastify();

// Every route of this context is protected.
app.register(async (api) => {
  await api.register(revokdFastify, { guard, realm: 'api' });
  api.get('/me', async (request) => ({ user: request.auth!.claims.sub }));
});

// Per route: the scopes as an option, or as a second hook.
app.get(
  '/orders',
  { onRequest: fastifyGuard(guard, { realm: 'api', scopes: ['orders:read'] }) },
  async (request) => ({
    for: request.auth!.claims.sub,
  }),
);
app.post(
  '/orders',
  { onRequest: [fastifyGuard(guard, { realm: 'api' }), requireScope('orders:write', { realm: 'api' })] },
  async (_request, reply) => reply.code(201).send(),
);

await guard.ready();
await app.listen({ port: 3000 });
