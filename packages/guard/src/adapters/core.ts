/**
 * What every framework adapter shares: option validation, the request decision (bearer credentials, the guard,
 * per-route stale policy, scopes) and the HTTP answer to a rejection. Framework-free: each adapter only reads
 * the `Authorization` header and writes the answer in its framework's terms.
 */
import type { GuardAcceptance, GuardDecision, GuardRejection } from '../decision.ts';
import { INVALID_TOKEN, MISSING_TOKEN } from '../decision.ts';
import { GuardError } from '../errors.ts';
import type { CheckOptions, Guard, StalePolicy } from '../guard.ts';
import { bearerChallenge, httpRejection, isBearerScheme } from '../http/bearer.ts';

/** What a protected handler receives: the guard's acceptance (`claims`, `facts`, and `stale: true` when accepted while stale). */
export type RevokdAuth = GuardAcceptance;

/**
 * The token is valid but lacks a scope the route requires: 403 with an RFC 6750 challenge naming the scopes.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export interface InsufficientScopeRejection {
  readonly ok: false;
  readonly status: 403;
  readonly error: 'insufficient_scope';
  readonly reason: 'insufficient_scope';
  /** The scopes the route requires, space-separated. */
  readonly scope: string;
}

export type AdapterRejection = GuardRejection | InsufficientScopeRejection;

/** An adapter's answer for one request: the guard's decision, or a scope rejection. */
export type AdapterDecision = GuardAcceptance | AdapterRejection;

/** Options of the challenge and body a rejected request is answered with. */
export interface ChallengeOptions {
  /** `realm` of the `WWW-Authenticate` challenge. Default `revokd`. */
  readonly realm?: string;
  /**
   * Put the stable rejection reason (`expired`, `revoked`, `aud_invalid`, `stale`…) in `error_description` of
   * the body and the challenge. Default false: the body carries a generic description; the reason stays
   * server-side.
   */
  readonly describeErrors?: boolean;
}

/** Options of a guard middleware. Validated when the middleware is created; unknown keys are refused. */
export interface GuardMiddlewareOptions extends ChallengeOptions {
  /**
   * Scopes the token must all carry (RFC 6749 §3.3 scope tokens); otherwise 403 `insufficient_scope`.
   * Default: none.
   */
  readonly scopes?: readonly string[];
  /**
   * What this route does when the guard cannot confirm its revocation index is fresh: `reject` answers 503,
   * `accept` serves valid, unrevoked tokens and marks the auth `stale: true`. Default: the guard's `stalePolicy`.
   */
  readonly stalePolicy?: StalePolicy;
  /** `Retry-After` of a 503, in seconds (0-86400). Default 5. */
  readonly retryAfterSeconds?: number;
}

/** An HTTP answer to a rejected request, ready to write. */
export interface HttpAnswer {
  readonly status: 401 | 403 | 503;
  readonly headers: Readonly<Record<string, string>>;
  /** Serialised JSON `{ error, error_description }`, or undefined when no credentials were sent (RFC 6750 §3.1). */
  readonly body: string | undefined;
}

/** A validated, frozen middleware configuration. */
export interface MiddlewareSettings {
  readonly guard: Guard;
  readonly checkOptions: CheckOptions | undefined;
  readonly scopes: ScopeSettings | undefined;
  readonly challenge: ChallengeSettings;
}

export interface ChallengeSettings {
  readonly realm: string;
  readonly describeErrors: boolean;
  readonly retryAfterSeconds: number;
  /** Answers per rejection: rejections are shared frozen values, so each is built once. */
  readonly answers: Map<AdapterRejection, HttpAnswer>;
}

export interface ScopeSettings {
  readonly required: readonly string[];
  readonly rejection: InsufficientScopeRejection;
  readonly challenge: ChallengeSettings;
}

const DESCRIPTIONS: Readonly<Record<string, string>> = {
  invalid_token: 'The access token is invalid',
  insufficient_scope: 'The access token does not grant the required scope',
  temporarily_unavailable: 'The token revocation state cannot be confirmed; retry later',
};

const MAX_CACHED_ANSWERS = 64;
const MIDDLEWARE_KEYS = new Set(['realm', 'describeErrors', 'scopes', 'stalePolicy', 'retryAfterSeconds']);
const SCOPE_KEYS = new Set(['realm', 'describeErrors']);
/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** Validates middleware options eagerly; `caller` names the factory in error messages. */
export function middlewareSettings(
  guard: Guard,
  options: GuardMiddlewareOptions | undefined,
  caller: string,
): MiddlewareSettings {
  if (typeof guard !== 'object' || guard === null || typeof guard.check !== 'function') {
    throw configError(caller, 'guard must be a guard from createGuard()');
  }
  return Object.freeze({ guard, ...optionSettings(options, caller) });
}

/** {@link middlewareSettings} without the guard: what the options alone decide. */
export function optionSettings(
  options: GuardMiddlewareOptions | undefined,
  caller: string,
): Omit<MiddlewareSettings, 'guard'> {
  const opts = plainOptions(options, MIDDLEWARE_KEYS, caller);
  const stalePolicy = opts.stalePolicy;
  if (stalePolicy !== undefined && stalePolicy !== 'reject' && stalePolicy !== 'accept') {
    throw configError(caller, "stalePolicy must be 'reject' or 'accept'");
  }
  const retryAfterSeconds = opts.retryAfterSeconds ?? 5;
  if (
    typeof retryAfterSeconds !== 'number' ||
    !Number.isInteger(retryAfterSeconds) ||
    retryAfterSeconds < 0 ||
    retryAfterSeconds > 86_400
  ) {
    throw configError(caller, 'retryAfterSeconds must be an integer from 0 to 86400');
  }
  const challenge = challengeSettings(opts, retryAfterSeconds, caller);
  return Object.freeze({
    checkOptions: stalePolicy === undefined ? undefined : Object.freeze({ stalePolicy }),
    scopes: opts.scopes === undefined ? undefined : scopeSettings(opts.scopes, challenge, caller),
    challenge,
  });
}

/** Validates the arguments of a `requireScope` helper eagerly. */
export function requiredScopeSettings(
  scopes: string | readonly string[],
  options: ChallengeOptions | undefined,
  caller: string,
): ScopeSettings {
  const opts = plainOptions(options, SCOPE_KEYS, caller);
  return scopeSettings(
    typeof scopes === 'string' ? [scopes] : scopes,
    challengeSettings(opts, 5, caller),
    caller,
  );
}

/**
 * Decides one request from its `Authorization` header value, synchronously. Only the `Bearer` scheme carries a
 * token here (RFC 6750 §2.1): no header or another scheme is a missing token; `Bearer` without a well-formed token
 * is an invalid one.
 */
export function decideRequest(
  settings: MiddlewareSettings,
  authorization: string | undefined,
): AdapterDecision {
  if (authorization === undefined || authorization.length === 0) return MISSING_TOKEN;
  if (authorization.indexOf(' ') === -1 && authorization.indexOf('\t') === -1) {
    // A lone word: `Bearer` without credentials, or a scheme we do not speak (never a bare token).
    return isBearerScheme(authorization) ? INVALID_TOKEN.malformed : MISSING_TOKEN;
  }
  const decision: GuardDecision = settings.guard.check(authorization, settings.checkOptions);
  const scopes = settings.scopes;
  if (scopes === undefined || !decision.ok) return decision;
  return scopeRejection(scopes, decision) ?? decision;
}

/** The scope rejection when `auth` lacks one of the required scopes, else undefined. */
export function scopeRejection(
  scopes: ScopeSettings,
  auth: RevokdAuth,
): InsufficientScopeRejection | undefined {
  const granted = auth.claims.scope;
  if (typeof granted !== 'string') return scopes.rejection;
  for (const scope of scopes.required) {
    if (!hasScopeToken(granted, scope)) return scopes.rejection;
  }
  return undefined;
}

/** Whether the space-separated `granted` contains `scope` as a whole token; allocates nothing. */
function hasScopeToken(granted: string, scope: string): boolean {
  let from = 0;
  for (;;) {
    const at = granted.indexOf(scope, from);
    if (at === -1) return false;
    const end = at + scope.length;
    if (
      (at === 0 || granted.charCodeAt(at - 1) === 32) &&
      (end === granted.length || granted.charCodeAt(end) === 32)
    ) {
      return true;
    }
    from = at + 1;
  }
}

/**
 * The answer to a rejection: 401 with a Bearer challenge (no error code when no token was sent), 403
 * `insufficient_scope` with the required `scope`, 503 with `Retry-After`; a JSON body `{ error, error_description }`
 * except for a missing token. Built once per rejection and settings.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function answerFor(settings: ChallengeSettings, rejection: AdapterRejection): HttpAnswer {
  let answer = settings.answers.get(rejection);
  if (answer === undefined) {
    answer = buildAnswer(settings, rejection);
    // The guard's rejections are a few dozen shared values; a guard that made new ones must not grow this.
    if (settings.answers.size < MAX_CACHED_ANSWERS) settings.answers.set(rejection, answer);
  }
  return answer;
}

function buildAnswer(settings: ChallengeSettings, rejection: AdapterRejection): HttpAnswer {
  const { realm, describeErrors } = settings;
  if (rejection.status === 403) {
    return Object.freeze({
      status: 403,
      headers: Object.freeze({
        'cache-control': 'no-store',
        'content-type': 'application/json',
        'www-authenticate': bearerChallenge({ realm, scope: rejection.scope, error: rejection.error }),
      }),
      body: JSON.stringify({ error: rejection.error, error_description: DESCRIPTIONS[rejection.error] }),
    });
  }
  const http = httpRejection(rejection, {
    realm,
    describeErrors,
    retryAfterSeconds: settings.retryAfterSeconds,
  });
  if (http.body === undefined)
    return Object.freeze({ status: http.status, headers: http.headers, body: undefined });
  const { error } = http.body;
  return Object.freeze({
    status: http.status,
    headers: Object.freeze({ ...http.headers, 'content-type': 'application/json' }),
    body: JSON.stringify({
      error,
      error_description: http.body.error_description ?? DESCRIPTIONS[error] ?? error,
    }),
  });
}

/** Thrown by a `requireScope` helper that runs on a request the guard middleware did not accept. */
export function missingAuthError(caller: string): GuardError {
  return configError(caller, 'no authenticated request: put the guard middleware before it');
}

function challengeSettings(
  opts: Record<string, unknown>,
  retryAfterSeconds: number,
  caller: string,
): ChallengeSettings {
  const realm = opts.realm ?? 'revokd';
  if (typeof realm !== 'string') throw configError(caller, 'realm must be a string');
  const describeErrors = opts.describeErrors ?? false;
  if (typeof describeErrors !== 'boolean') throw configError(caller, 'describeErrors must be a boolean');
  return Object.freeze({ realm, describeErrors, retryAfterSeconds, answers: new Map() });
}

function scopeSettings(scopes: unknown, challenge: ChallengeSettings, caller: string): ScopeSettings {
  if (!Array.isArray(scopes) || scopes.length === 0) {
    throw configError(caller, 'scopes must be a non-empty array of scope tokens');
  }
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope)) {
      throw configError(caller, `scope ${JSON.stringify(scope)} is not an RFC 6749 scope token`);
    }
  }
  const required = Object.freeze([...new Set<string>(scopes)]);
  return Object.freeze({
    required,
    rejection: Object.freeze({
      ok: false,
      status: 403,
      error: 'insufficient_scope',
      reason: 'insufficient_scope',
      scope: required.join(' '),
    } as const),
    challenge,
  });
}

function plainOptions(
  options: object | undefined,
  keys: ReadonlySet<string>,
  caller: string,
): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw configError(caller, 'options must be an object');
  // A misspelt option (`scope` for `scopes`) would silently weaken a route: refuse it.
  for (const key of Object.keys(options)) {
    if (!keys.has(key)) throw configError(caller, `unknown option ${JSON.stringify(key)}`);
  }
  return options as Record<string, unknown>;
}

/** A `REVOKD_GUARD_CONFIG` error whose message names the factory. */
export function configError(caller: string, message: string): GuardError {
  return new GuardError('REVOKD_GUARD_CONFIG', `${caller}: ${message}`);
}
