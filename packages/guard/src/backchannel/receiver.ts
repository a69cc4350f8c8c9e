import { GuardError } from '../errors.ts';
import { emit } from '../events.ts';
import { checkEndpointUrl, type FetchFunction } from '../http/fetch.ts';
import type { Rule } from '../model/rule.ts';
import { GUARD_ALGORITHMS, type KeyResolver } from '../verify/key-set.ts';
import { RemoteKeySet } from '../verify/remote-key-set.ts';
import { integerIn } from '../verify/verifier.ts';
import {
  type BackchannelLogout,
  type LogoutRejectReason,
  LogoutTokenValidator,
  type LogoutTokenValidatorOptions,
} from './logout-token.ts';

/** Where a receiver writes the revocations a logout implies: a {@link Guard}, or any in-memory index. */
export interface LocalRevocationTarget {
  revokeLocally(rule: Rule): void;
}

/** Options of {@link createBackchannelLogoutReceiver}. Units are in the names; defaults are given per option. */
export interface BackchannelLogoutReceiverOptions
  extends Omit<LogoutTokenValidatorOptions, 'keys' | 'onUnknownKid'> {
  /**
   * The provider's keys: a guard's `keys`, a {@link KeySet}, or a {@link RemoteKeySet}. Give this or `jwksUri`.
   */
  readonly keys?: KeyResolver;
  /** The provider's JWKS URL, fetched on first use and when a token names an unknown `kid`. */
  readonly jwksUri?: string;
  /** Receives a session rule (`sid`) or a subject not-before rule (`sub` only) for each accepted logout. */
  readonly guard?: LocalRevocationTarget;
  /**
   * Called after the local rules are written, e.g. to end the application's own sessions. May be async; if it
   * throws, the answer is 500 (the provider retries) and the token may be delivered again. Keep it idempotent.
   */
  readonly onLogout?: (logout: BackchannelLogout) => void | Promise<void>;
  /**
   * Longest lifetime of an access token of this provider, in seconds (1-31622400): local rules last this long
   * (plus `clockSkewSeconds`), so every token issued before the logout expires under them. Default 3600; keep it
   * equal to the guard's `maxTokenLifetimeSeconds`.
   */
  readonly maxTokenLifetimeSeconds?: number;
  /** Largest request body accepted by {@link BackchannelLogoutReceiver.handle}, in bytes. Default 16384. */
  readonly maxBodyBytes?: number;
  /** For `jwksUri`: request timeout, in ms. Default 10000. */
  readonly requestTimeoutMs?: number;
  /** For `jwksUri`: allow `http:` to a non-loopback host. Default false. */
  readonly allowInsecureHttp?: boolean;
  /** For `jwksUri`. Default: the global `fetch`. */
  readonly fetch?: FetchFunction;
  /** Milliseconds since the epoch. Default `Date.now`. */
  readonly now?: () => number;
}

/** What one logout token did: the rules written locally, or why it was refused. */
export type LogoutReceipt =
  | { readonly ok: true; readonly logout: BackchannelLogout; readonly rules: readonly Rule[] }
  | { readonly ok: false; readonly reason: LogoutRejectReason | 'keys_unavailable' };

/** A framework-neutral HTTP answer: write `status`, every header, and `body` as is. */
export interface BackchannelLogoutResponse {
  readonly status: 200 | 400 | 500 | 503;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface BackchannelLogoutReceiver {
  /** Validates one logout token and applies it (local rules, then `onLogout`). Rejects only if `onLogout` throws. */
  receive(logoutToken: string): Promise<LogoutReceipt>;
  /**
   * Answers a back-channel logout request (§2.5, §2.8): pass the raw body (or the parsed form) and the
   * `Content-Type` header. 200 with an empty body once the logout is applied; 400 `{"error":"invalid_request"}`
   * for a bad request or token; 503 while the provider's keys cannot be fetched; 500 when `onLogout` failed.
   * Every answer has `Cache-Control: no-store`. Route only `POST` here.
   */
  handle(
    body: string | URLSearchParams,
    contentType: string | null | undefined,
  ): Promise<BackchannelLogoutResponse>;
  /** Stops the key set created for `jwksUri`; a key set passed as `keys` (a guard's) is left alone. */
  close(): void;
}

const FORM = 'application/x-www-form-urlencoded';
const NO_STORE = 'no-store';

/**
 * Creates the receiving end of OpenID Connect Back-Channel Logout 1.0 for a relying party or resource server:
 * validates logout tokens (§2.6) and turns each into a local revocation, so tokens of the ended session (or, for a
 * `sub`-only token, of the user) are rejected by this process's guard at once — also behind a third-party
 * OpenID provider that knows nothing of revokd.
 *
 * @example
 * ```ts
 * const logout = createBackchannelLogoutReceiver({ issuer, audience: 'my-client-id', keys: guard.keys, guard });
 * app.post('/backchannel-logout', async (req, res) => {
 *   const answer = await logout.handle(req.rawBody, req.headers['content-type']);
 *   res.status(answer.status).set(answer.headers).send(answer.body);
 * });
 * ```
 * @see https://openid.net/specs/openid-connect-backchannel-1_0.html
 */
export function createBackchannelLogoutReceiver(
  options: BackchannelLogoutReceiverOptions,
): BackchannelLogoutReceiver {
  return new Receiver(options);
}

class Receiver implements BackchannelLogoutReceiver {
  readonly #validator: LogoutTokenValidator;
  readonly #remote: RemoteKeySet | undefined;
  /** Whether `#remote` was created here (from `jwksUri`), and so is closed here. */
  readonly #ownsKeys: boolean;
  readonly #guard: LocalRevocationTarget | undefined;
  readonly #onLogout: BackchannelLogoutReceiverOptions['onLogout'];
  readonly #ruleLifetimeMs: number;
  readonly #maxBodyBytes: number;
  readonly #now: () => number;

  constructor(options: BackchannelLogoutReceiverOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new GuardError('REVOKD_GUARD_CONFIG', 'options are required');
    }
    if ((options.keys === undefined) === (options.jwksUri === undefined)) {
      throw new GuardError('REVOKD_GUARD_CONFIG', 'give exactly one of keys and jwksUri');
    }
    const now = options.now ?? Date.now;
    if (typeof now !== 'function') throw new GuardError('REVOKD_GUARD_CONFIG', 'now must be a function');
    if (options.onLogout !== undefined && typeof options.onLogout !== 'function') {
      throw new GuardError('REVOKD_GUARD_CONFIG', 'onLogout must be a function');
    }
    if (options.guard !== undefined && typeof options.guard?.revokeLocally !== 'function') {
      throw new GuardError('REVOKD_GUARD_CONFIG', 'guard must have a revokeLocally method');
    }
    const algorithms = options.algorithms ?? GUARD_ALGORITHMS;
    let keys = options.keys;
    if (options.jwksUri !== undefined) {
      const fetch = options.fetch ?? globalThis.fetch;
      if (typeof fetch !== 'function')
        throw new GuardError('REVOKD_GUARD_CONFIG', 'fetch must be a function');
      keys = new RemoteKeySet({
        jwksUri: checkEndpointUrl(options.jwksUri, 'jwksUri', options.allowInsecureHttp === true).href,
        algorithms,
        fetch,
        now,
        timeoutMs: integerIn(options.requestTimeoutMs, 10_000, 1, 600_000, 'requestTimeoutMs'),
      });
    }
    this.#remote = keys instanceof RemoteKeySet ? keys : undefined;
    this.#ownsKeys = options.jwksUri !== undefined;
    const remote = this.#remote;
    this.#validator = new LogoutTokenValidator({
      ...options,
      algorithms,
      keys: keys as KeyResolver,
      onUnknownKid: remote ? () => remote.requestRefresh() : undefined,
    });
    const skewSeconds = integerIn(options.clockSkewSeconds, 30, 0, 300, 'clockSkewSeconds');
    const lifetimeSeconds = integerIn(
      options.maxTokenLifetimeSeconds,
      3600,
      1,
      366 * 86_400,
      'maxTokenLifetimeSeconds',
    );
    this.#ruleLifetimeMs = (lifetimeSeconds + skewSeconds) * 1000;
    this.#maxBodyBytes = integerIn(options.maxBodyBytes, 16_384, 256, 1 << 20, 'maxBodyBytes');
    this.#guard = options.guard;
    this.#onLogout = options.onLogout;
    this.#now = now;
  }

  async receive(logoutToken: string): Promise<LogoutReceipt> {
    if (this.#remote && !this.#remote.loaded) {
      try {
        await this.#remote.refresh();
      } catch {
        return reject('keys_unavailable');
      }
    }
    const nowMs = this.#now();
    const decision = this.#validator.validate(logoutToken, nowMs);
    if (!decision.ok) return reject(decision.reason);
    const { logout } = decision;
    const rules = rulesFor(logout, nowMs, this.#ruleLifetimeMs);
    for (const rule of rules) this.#guard?.revokeLocally(rule);
    emit(() => ({ type: 'logout', jti: logout.jti, sid: logout.sid, sub: logout.sub }));
    if (this.#onLogout) {
      try {
        await this.#onLogout(logout);
      } catch (error) {
        // The provider will retry; let the same token through again.
        this.#validator.forget(logout.jti);
        throw error;
      }
    }
    return { ok: true, logout, rules };
  }

  async handle(
    body: string | URLSearchParams,
    contentType: string | null | undefined,
  ): Promise<BackchannelLogoutResponse> {
    const token = this.#logoutToken(body, contentType);
    if (token === undefined) {
      emit(() => ({ type: 'logout_rejected', reason: 'invalid_request' }));
      return INVALID_REQUEST;
    }
    let receipt: LogoutReceipt;
    try {
      receipt = await this.receive(token);
    } catch {
      return SERVER_ERROR;
    }
    if (receipt.ok) return OK;
    return receipt.reason === 'keys_unavailable' ? UNAVAILABLE : INVALID_REQUEST;
  }

  close(): void {
    if (this.#ownsKeys) this.#remote?.close();
  }

  #logoutToken(body: string | URLSearchParams, contentType: string | null | undefined): string | undefined {
    if (typeof contentType === 'string') {
      if (contentType.split(';', 1)[0]!.trim().toLowerCase() !== FORM) return undefined;
    } else if (!(body instanceof URLSearchParams)) {
      return undefined;
    }
    let params: URLSearchParams;
    if (typeof body === 'string') {
      if (Buffer.byteLength(body) > this.#maxBodyBytes) return undefined;
      params = new URLSearchParams(body);
    } else if (body instanceof URLSearchParams) {
      params = body;
    } else {
      return undefined;
    }
    const tokens = params.getAll('logout_token');
    return tokens.length === 1 && tokens[0]!.length > 0 ? tokens[0] : undefined;
  }
}

/**
 * The local rules of a logout: with `sid`, that session only (§2.7); with `sub` alone, every token of the user
 * issued before the logout. `iat` has whole seconds, so the not-before instant covers the logout's whole second
 * (a token from that second is refused: fail closed), but never reaches past the moment of receipt.
 */
export function rulesFor(logout: BackchannelLogout, nowMs: number, ruleLifetimeMs: number): Rule[] {
  const expiresAtMs = nowMs + ruleLifetimeMs;
  if (logout.sid !== undefined) return [{ kind: 'session', sid: logout.sid, expiresAtMs }];
  if (logout.sub !== undefined) {
    const notBeforeUs = Math.min(nowMs * 1000, (Math.floor(logout.iat) + 1) * 1_000_000);
    return [{ kind: 'subject', sub: logout.sub, notBeforeUs, expiresAtMs }];
  }
  return [];
}

function reject(reason: LogoutRejectReason | 'keys_unavailable'): LogoutReceipt {
  emit(() => ({ type: 'logout_rejected', reason }));
  return { ok: false, reason };
}

const answer = (status: BackchannelLogoutResponse['status'], error?: string): BackchannelLogoutResponse =>
  Object.freeze({
    status,
    headers: Object.freeze<Record<string, string>>(
      error === undefined
        ? { 'cache-control': NO_STORE }
        : { 'cache-control': NO_STORE, 'content-type': 'application/json' },
    ),
    body: error === undefined ? '' : JSON.stringify({ error }),
  });

const OK = answer(200);
const INVALID_REQUEST = answer(400, 'invalid_request');
const SERVER_ERROR = answer(500, 'server_error');
const UNAVAILABLE = answer(503, 'temporarily_unavailable');
