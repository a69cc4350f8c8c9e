import type { FastifyInstance } from 'fastify';
import type { HttpContext } from '../app.ts';

/** Liveness/readiness and Prometheus metrics. */
export function opsRoutes(app: FastifyInstance, { runtime, metrics }: HttpContext): void {
  app.get('/healthz', async (_request, reply) => {
    return reply.header('cache-control', 'no-store').send({
      status: 'ok',
      cursor: runtime.revocation.index.cursor,
      activeRules: runtime.revocation.index.size,
      signingKey: runtime.keyring.activeKid,
    });
  });

  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
