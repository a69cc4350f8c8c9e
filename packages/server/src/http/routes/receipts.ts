import { FEED_PATHS, GUARD_ID_PATTERN } from '@revokd/guard';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { OAuthError, RevokdError } from '../../core/errors.ts';
import type { Enforcement } from '../../services/guard-registry.ts';
import { type HttpContext, onlyMethods } from '../app.ts';
import { authorizeFeedReader } from './feed.ts';

const receiptBody = z.strictObject({
  guardId: z.string().regex(GUARD_ID_PATTERN),
  cursor: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

/** Longest a revocation may wait for guards to enforce it (`wait_ms`), in milliseconds. */
export const MAX_WAIT_MS = 30_000;

/**
 * `POST /revocations/receipts` `{ guardId, cursor }`: a guard reports the cursor it has applied. Callers
 * authenticate like the stream (client credentials of a client allowed to introspect). The guard must have a
 * stream open on this server under that id and client; in cluster mode a receipt is accepted on any node, and
 * registers the guard, unless another client's guard holds the id. `204` once recorded.
 */
export function receiptRoutes(app: FastifyInstance, { runtime }: HttpContext): void {
  app.post(FEED_PATHS.receipts, async (request, reply) => {
    const client = await authorizeFeedReader(runtime, request);
    const parsed = receiptBody.safeParse(request.body);
    if (!parsed.success) {
      throw new OAuthError('invalid_request', 'the body must be JSON { guardId, cursor }');
    }
    const { guardDirectory } = runtime;
    const outcome = await guardDirectory.receipt(parsed.data.guardId, client.id, parsed.data.cursor);
    if (outcome === 'cursor_ahead') throw new OAuthError('invalid_request', 'cursor is beyond the log');
    if (outcome === 'unknown_guard') {
      throw new RevokdError(
        'REVOKD_NOT_FOUND',
        guardDirectory.scope === 'cluster'
          ? 'this guard id is held by a guard of another client'
          : 'no stream of this guard is open on this server',
      );
    }
    return reply.code(204).header('cache-control', 'no-store').send();
  });
  onlyMethods(app, FEED_PATHS.receipts, ['POST']);
}

/** Reads a `wait_ms` value (decimal milliseconds, 0-{@link MAX_WAIT_MS}); undefined when absent. */
export function parseWaitMs(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[0-9]{1,5}$/.test(value) || Number(value) > MAX_WAIT_MS) {
    throw new OAuthError('invalid_request', `wait_ms must be an integer from 0 to ${MAX_WAIT_MS}`);
  }
  return Number(value);
}

/** The `enforcement` member of a revocation answer (`scope` in cluster mode only). */
export function enforcementView(enforcement: Enforcement) {
  return {
    cursor: enforcement.cursor,
    enforced_by: enforcement.enforcedBy,
    pending: enforcement.pending,
    timed_out: enforcement.timedOut,
    ...(enforcement.scope === undefined ? {} : { scope: enforcement.scope }),
  };
}
