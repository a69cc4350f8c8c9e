import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { OAuthError } from '../../core/errors.ts';
import type { Runtime } from '../../runtime.ts';
import type { ClientRecord } from '../../store/port.ts';
import type { HttpContext } from '../app.ts';
import { readClientCredentials } from '../client-auth.ts';
import { FormParams } from '../form.ts';

const logQuery = z.strictObject({
  after: z.coerce.number().int().min(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});

/**
 * The revocation log for guards: a snapshot of the active rules with the cursor it reflects, and the entries
 * after a cursor. Callers authenticate as a client allowed to introspect (a resource server).
 */
export function feedRoutes(app: FastifyInstance, { runtime }: HttpContext): void {
  const authorize = (request: FastifyRequest) => authorizeFeedReader(runtime, request);

  app.get('/revocations/snapshot', async (request, reply) => {
    await authorize(request);
    const snapshot = await runtime.store.snapshot(runtime.clock.nowMs());
    return reply.header('cache-control', 'no-store').send(snapshot);
  });

  app.get('/revocations/log', async (request, reply) => {
    await authorize(request);
    const parsed = logQuery.safeParse(request.query);
    if (!parsed.success)
      throw new OAuthError('invalid_request', 'after (a cursor) is required; limit is 1-10000');
    const entries = await runtime.store.readLog(parsed.data.after, parsed.data.limit);
    return reply
      .header('cache-control', 'no-store')
      .send({ entries, cursor: entries.at(-1)?.cursor ?? parsed.data.after });
  });
}

/** Authenticates the caller (client credentials) as a client allowed to introspect, i.e. to read the log. */
export async function authorizeFeedReader(runtime: Runtime, request: FastifyRequest): Promise<ClientRecord> {
  const client = await runtime.clients.authenticate(readClientCredentials(request, FormParams.empty()));
  if (!client.canIntrospect)
    throw new OAuthError('access_denied', 'this client may not read the revocation log');
  return client;
}
