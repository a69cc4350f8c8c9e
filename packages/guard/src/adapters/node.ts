/**
 * Plain `node:http`, no framework: `import { guardRequest, sendRejection, withGuard } from '@revokd/guard/node'`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Guard } from '../guard.ts';
import {
  type AdapterDecision,
  type AdapterRejection,
  answerFor,
  type ChallengeSettings,
  configError,
  decideRequest,
  type GuardMiddlewareOptions,
  type MiddlewareSettings,
  middlewareSettings,
  optionSettings,
  type RevokdAuth,
} from './core.ts';

export type {
  AdapterDecision,
  AdapterRejection,
  ChallengeOptions,
  GuardMiddlewareOptions,
  HttpAnswer,
  InsufficientScopeRejection,
  RevokdAuth,
} from './core.ts';

/** A request handler behind {@link withGuard}: it runs only for accepted requests, with the accepted token. */
export type GuardedHandler<
  Req extends IncomingMessage = IncomingMessage,
  Res extends ServerResponse = ServerResponse,
> = (request: Req, response: Res, auth: RevokdAuth) => unknown;

const DEFAULTS = {};
/** Settings per guard and options object, validated on first use: pass the same (constant) options every time. */
const settingsCache = new WeakMap<Guard, WeakMap<object, MiddlewareSettings>>();
const challengeCache = new WeakMap<object, ChallengeSettings>();

function settingsFor(guard: Guard, options: GuardMiddlewareOptions | undefined): MiddlewareSettings {
  const key = options ?? DEFAULTS;
  let byOptions = settingsCache.get(guard);
  let settings = byOptions?.get(key);
  if (settings === undefined) {
    settings = middlewareSettings(guard, options, 'guardRequest');
    if (byOptions === undefined) {
      byOptions = new WeakMap();
      settingsCache.set(guard, byOptions);
    }
    byOptions.set(key, settings);
  }
  return settings;
}

function challengeFor(options: GuardMiddlewareOptions | undefined): ChallengeSettings {
  const key = options ?? DEFAULTS;
  let challenge = challengeCache.get(key);
  if (challenge === undefined) {
    challenge = optionSettings(options, 'sendRejection').challenge;
    challengeCache.set(key, challenge);
  }
  return challenge;
}

/**
 * Decides one `node:http` request from its `Authorization` header, synchronously: the guard's acceptance
 * (`claims`, `stale`), or a rejection to pass to {@link sendRejection} with the same options. Never throws for a
 * bad request. Options (`scopes`, `stalePolicy`, `realm`…) are validated on first use of each options object:
 * keep it constant.
 *
 * @example
 * ```ts
 * const decision = guardRequest(guard, req, ROUTE);
 * if (!decision.ok) return sendRejection(res, decision, ROUTE);
 * ```
 */
export function guardRequest(
  guard: Guard,
  request: IncomingMessage,
  options?: GuardMiddlewareOptions,
): AdapterDecision {
  return decideRequest(settingsFor(guard, options), request.headers.authorization);
}

/**
 * Answers a rejected request: 401 with an RFC 6750 challenge (bare `Bearer realm="…"` when no token was sent),
 * 403 `insufficient_scope` with `scope="…"`, or 503 with `Retry-After`; a JSON body `{ error, error_description }`
 * except for a missing token. Pass the options given to {@link guardRequest}.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function sendRejection(
  response: ServerResponse,
  rejection: AdapterRejection,
  options?: GuardMiddlewareOptions,
): void {
  const answer = answerFor(challengeFor(options), rejection);
  response.writeHead(answer.status, answer.headers);
  response.end(answer.body);
}

/**
 * Wraps a `node:http` request listener so that it runs only with a valid, unrevoked bearer token (passed as its
 * third argument); rejected requests are answered as by {@link sendRejection}. Options are validated here, once.
 * The returned listener's promise settles with the handler's: an error the handler throws is not caught here.
 *
 * @example
 * ```ts
 * createServer(withGuard(guard, (req, res, auth) => res.end(`hello ${auth.claims.sub}`), { realm: 'api' }));
 * ```
 */
export function withGuard<
  Req extends IncomingMessage = IncomingMessage,
  Res extends ServerResponse = ServerResponse,
>(
  guard: Guard,
  handler: GuardedHandler<Req, Res>,
  options?: GuardMiddlewareOptions,
): (request: Req, response: Res) => Promise<void> {
  const settings = middlewareSettings(guard, options, 'withGuard');
  if (typeof handler !== 'function') throw configError('withGuard', 'handler must be a function');
  return async function revokdGuard(request, response) {
    const decision = decideRequest(settings, request.headers.authorization);
    if (decision.ok) {
      await handler(request, response, decision);
      return;
    }
    const answer = answerFor(settings.challenge, decision);
    response.writeHead(answer.status, answer.headers);
    response.end(answer.body);
  };
}
