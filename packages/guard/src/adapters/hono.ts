/**
 * Hono 4 middleware: `import { honoGuard, requireScope, type RevokdEnv } from '@revokd/guard/hono'`.
 * Hono is not a dependency of the guard: only its types are imported.
 */
import type { Context, MiddlewareHandler } from 'hono';
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

/** The context variables the guard middleware sets: `c.get('auth')`. */
export interface RevokdVariables {
  /** The accepted token (`claims`, `stale`). */
  auth: RevokdAuth;
}

/** Hono environment of routes behind {@link honoGuard}: `new Hono<RevokdEnv>()`, or merged into yours. */
export interface RevokdEnv {
  Variables: RevokdVariables;
}

/**
 * Hono middleware that admits a request only with a valid, unrevoked bearer token: `c.get('auth')` holds it on
 * acceptance; otherwise the answer is 401 with an RFC 6750 challenge (`Bearer realm="…", error="invalid_token"`, or
 * a bare `Bearer realm="…"` when no token was sent), 403 `insufficient_scope` when `scopes` are missing, or 503
 * with `Retry-After` when the guard is stale under the route's stale policy. Options are validated here, once.
 *
 * @example
 * ```ts
 * const app = new Hono<RevokdEnv>();
 * app.get('/orders', honoGuard(guard, { scopes: ['read'] }), (c) => c.json({ user: c.get('auth').claims.sub }));
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function honoGuard(guard: Guard, options?: GuardMiddlewareOptions): MiddlewareHandler<RevokdEnv> {
  const settings = middlewareSettings(guard, options, 'honoGuard');
  return async function revokdGuard(c, next) {
    const decision = decideRequest(settings, c.req.header('authorization'));
    if (!decision.ok) return send(c, answerFor(settings.challenge, decision));
    c.set('auth', decision);
    await next();
    return undefined;
  };
}

/**
 * Middleware, placed after {@link honoGuard}, that answers 403 `insufficient_scope` (with `scope="…"` in the
 * challenge) unless the token carries every one of `scopes`. Pass the same `realm` as the guard middleware.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function requireScope(
  scopes: string | readonly string[],
  options?: ChallengeOptions,
): MiddlewareHandler<RevokdEnv> {
  const settings = requiredScopeSettings(scopes, options, 'requireScope');
  return async function revokdRequireScope(c, next) {
    const auth: RevokdAuth | undefined = c.get('auth');
    if (auth === undefined) throw missingAuthError('requireScope');
    const rejection = scopeRejection(settings, auth);
    if (rejection !== undefined) return send(c, answerFor(settings.challenge, rejection));
    await next();
    return undefined;
  };
}

function send(c: Context, answer: HttpAnswer): Response {
  return answer.body === undefined
    ? c.body(null, answer.status, answer.headers)
    : c.body(answer.body, answer.status, answer.headers);
}
