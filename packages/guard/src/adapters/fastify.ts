/**
 * Fastify 5 hooks and plugin: `import { fastifyGuard, requireScope, revokdFastify } from '@revokd/guard/fastify'`.
 * Fastify is not a dependency of the guard: only its types are imported.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Guard } from '../guard.ts';
import {
  answerFor,
  type ChallengeOptions,
  decideRequest,
  type GuardMiddlewareOptions,
  type HttpAnswer,
  middlewareSettings,
  missingAuthError,
  type RevokdAuth,
  requiredScopeSettings,
  scopeRejection,
} from './core.ts';

export type {
  AdapterDecision,
  AdapterRejection,
  ChallengeOptions,
  GuardMiddlewareOptions,
  InsufficientScopeRejection,
  RevokdAuth,
} from './core.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The accepted token (`claims`, `stale`), set by {@link fastifyGuard}; undefined on unprotected routes. */
    auth?: RevokdAuth;
  }
}

/** An `onRequest` (or `preHandler`) hook; it answers rejected requests itself. */
export type FastifyGuardHook = (
  request: FastifyRequest,
  reply: FastifyReply,
) => Promise<FastifyReply | undefined>;

/**
 * A Fastify hook that admits a request only with a valid, unrevoked bearer token: `request.auth` is set on
 * acceptance; otherwise the reply is 401 with an RFC 6750 challenge (`Bearer realm="…", error="invalid_token"`, or
 * a bare `Bearer realm="…"` when no token was sent), 403 `insufficient_scope` when `scopes` are missing, or 503
 * with `Retry-After` when the guard is stale under the route's stale policy. Use it as a route's `onRequest`
 * (before the body is read), or for a whole context with {@link revokdFastify}.
 *
 * @example
 * ```ts
 * app.get('/orders', { onRequest: fastifyGuard(guard, { scopes: ['read'] }) }, async (request) => ({
 *   user: request.auth!.claims.sub,
 * }));
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function fastifyGuard(guard: Guard, options?: GuardMiddlewareOptions): FastifyGuardHook {
  const settings = middlewareSettings(guard, options, 'fastifyGuard');
  return async function revokdGuard(request, reply) {
    const decision = decideRequest(settings, request.headers.authorization);
    if (decision.ok) {
      request.auth = decision;
      return undefined;
    }
    return send(reply, answerFor(settings.challenge, decision));
  };
}

/**
 * A hook, placed after {@link fastifyGuard}, that answers 403 `insufficient_scope` (with `scope="…"` in the
 * challenge) unless the token carries every one of `scopes`. Pass the same `realm` as the guard hook.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function requireScope(
  scopes: string | readonly string[],
  options?: ChallengeOptions,
): FastifyGuardHook {
  const settings = requiredScopeSettings(scopes, options, 'requireScope');
  return async function revokdRequireScope(request, reply) {
    const auth = request.auth;
    if (auth === undefined) throw missingAuthError('requireScope');
    const rejection = scopeRejection(settings, auth);
    return rejection === undefined ? undefined : send(reply, answerFor(settings.challenge, rejection));
  };
}

/** Options of {@link revokdFastify}: the guard, and the options of {@link fastifyGuard}. */
export interface RevokdFastifyOptions extends GuardMiddlewareOptions {
  readonly guard: Guard;
}

/** Options Fastify itself reads from `register()`; not ours to validate. */
const REGISTER_KEYS = new Set(['prefix', 'logLevel', 'logSerializers']);

/**
 * A Fastify plugin that protects every route of the context it is registered in (it is not encapsulated, like
 * plugins wrapped with `fastify-plugin`): it declares `request.auth` and adds {@link fastifyGuard} as an
 * `onRequest` hook. Register it inside a child context to protect only that context's routes.
 *
 * @example
 * ```ts
 * app.register(async (api) => {
 *   await api.register(revokdFastify, { guard, realm: 'api' });
 *   api.get('/me', async (request) => request.auth!.claims);
 * });
 * ```
 */
export const revokdFastify: FastifyPluginAsync<RevokdFastifyOptions> = Object.assign(
  async function revokdFastifyPlugin(fastify: FastifyInstance, options: RevokdFastifyOptions) {
    const middleware: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(options)) {
      if (key !== 'guard' && !REGISTER_KEYS.has(key)) middleware[key] = value;
    }
    const hook = fastifyGuard(options.guard, middleware);
    if (!fastify.hasRequestDecorator('auth')) fastify.decorateRequest('auth', undefined);
    fastify.addHook('onRequest', hook);
  },
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: '@revokd/guard' },
);

function send(reply: FastifyReply, answer: HttpAnswer): FastifyReply {
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}
