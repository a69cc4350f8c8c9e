/**
 * Express 5 middleware: `import { expressGuard, requireScope } from '@revokd/guard/express'`.
 * Express is not a dependency of the guard: only its types are imported.
 */
import type { RequestHandler, Response } from 'express';
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

declare global {
  namespace Express {
    interface Request {
      /** The accepted token (`claims`, `stale`), set by {@link expressGuard}; undefined on unprotected routes. */
      auth?: RevokdAuth;
    }
    interface Locals {
      /** The same as `req.auth`, for views. */
      auth?: RevokdAuth;
    }
  }
}

/**
 * Express middleware that admits a request only with a valid, unrevoked bearer token. An accepted request gets
 * `req.auth` (and `res.locals.auth`); a rejected one is answered here: 401 with an RFC 6750 challenge
 * (`Bearer realm="…", error="invalid_token"`, or a bare `Bearer realm="…"` when no token was sent), 403
 * `insufficient_scope` when `scopes` are missing, 503 with `Retry-After` when the guard is stale under the route's
 * stale policy. Options are validated here, once.
 *
 * @example
 * ```ts
 * app.get('/orders', expressGuard(guard, { realm: 'api', scopes: ['read'] }), (req, res) => {
 *   res.json({ user: req.auth!.claims.sub });
 * });
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function expressGuard(guard: Guard, options?: GuardMiddlewareOptions): RequestHandler {
  const settings = middlewareSettings(guard, options, 'expressGuard');
  return function revokdGuard(req, res, next) {
    const decision = decideRequest(settings, req.headers.authorization);
    if (decision.ok) {
      req.auth = decision;
      res.locals.auth = decision;
      next();
    } else {
      send(res, answerFor(settings.challenge, decision));
    }
  };
}

/**
 * Express middleware, placed after {@link expressGuard}, that answers 403 `insufficient_scope` (with `scope="…"`
 * in the challenge) unless the token carries every one of `scopes`. Pass the same `realm` as the guard middleware.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function requireScope(scopes: string | readonly string[], options?: ChallengeOptions): RequestHandler {
  const settings = requiredScopeSettings(scopes, options, 'requireScope');
  return function revokdRequireScope(req, res, next) {
    const auth = req.auth;
    if (auth === undefined) {
      next(missingAuthError('requireScope'));
      return;
    }
    const rejection = scopeRejection(settings, auth);
    if (rejection === undefined) next();
    else send(res, answerFor(settings.challenge, rejection));
  };
}

function send(res: Response, answer: HttpAnswer): void {
  res.status(answer.status).set(answer.headers).end(answer.body);
}
