import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type GuardDecision,
  INVALID_TOKEN,
  MISSING_TOKEN,
  NOT_ALLOWED,
  NOT_READY,
  REVOKED,
  STALE,
} from './decision.ts';
import { GuardError } from './errors.ts';
import { emit } from './events.ts';
import { backoffDelayMs, FeedFollower, type FeedState, type ReconnectOptions } from './feed/follower.ts';
import { httpFeed } from './feed/http.ts';
import type { FeedTransport } from './feed/transport.ts';
import { GUARD_ID_PATTERN, parseRule } from './feed/wire.ts';
import { bearerToken, isBearerScheme } from './http/bearer.ts';
import { basicAuthorization, checkEndpointUrl, type FetchFunction } from './http/fetch.ts';
import { RevocationIndex } from './model/revocation-index.ts';
import type { Rule } from './model/rule.ts';
import { GUARD_ALGORITHMS, type GuardAlgorithm, type KeyResolver } from './verify/key-set.ts';
import { discoverJwksUri, RemoteKeySet } from './verify/remote-key-set.ts';
import { AccessTokenVerifier, integerIn } from './verify/verifier.ts';

export type StalePolicy = 'reject' | 'accept';

/**
 * `denylist` (default): accept every valid token no rule revokes. `allowlist`: also require the token's issuance
 * (an `allow` entry, written by a server with `tokens.allowlist`) to have reached this guard.
 */
export type GuardMode = 'denylist' | 'allowlist';

/** Options of one {@link Guard.check} call. */
export interface CheckOptions {
  /** Overrides the guard's `stalePolicy` for this call (e.g. per route). Default: the guard's. */
  readonly stalePolicy?: StalePolicy;
}

/** Options of {@link createGuard}. Units are in the names; defaults are given per option. */
export interface GuardOptions {
  /** The revokd issuer: the expected `iss`, and the metadata's `issuer` (RFC 8414 §3.3). */
  readonly issuer: string;
  /** This resource server's identifier(s); a token's `aud` must contain one of them. */
  readonly audience: string | readonly string[];
  /**
   * `denylist` (default) or `allowlist`: accept only tokens whose issuance has reached this guard through the
   * feed (the server must run with `tokens.allowlist: true`). A token presented before its issuance arrives
   * (usually milliseconds after the token response) is rejected 401 `invalid_token`, reason `not_allowed`;
   * clients may retry. Costs one index entry per live issued token.
   */
  readonly mode?: GuardMode;
  /** Client credentials of a client allowed to introspect: they authenticate the revocation feed. */
  readonly clientId: string;
  readonly clientSecret: string;
  /**
   * Names this guard to the server: it is listed under this id in `GET /admin/guards`, and in the
   * `enforced_by` / `pending` lists of revocations that wait for enforcement. 1-128 printable ASCII
   * characters, no spaces. Default `<hostname>:<pid>:<8 random hex digits>`.
   */
  readonly guardId?: string;
  /** Where the server is reached (metadata, feed). Default: `issuer`. */
  readonly serverUrl?: string;
  /** The JWKS URL. Default: `jwks_uri` of the server's RFC 8414 metadata. */
  readonly jwksUri?: string;
  /** Accepted signature algorithms. Default: EdDSA, ES256, RS256, PS256. */
  readonly algorithms?: readonly GuardAlgorithm[];
  /** Clock tolerance for `exp`, `nbf`, `iat`, in seconds (0-300). Default 30; keep it ≤ the server's. */
  readonly clockSkewSeconds?: number;
  /** Longest accepted `exp - iat`, in seconds. Default 3600; keep it ≤ the server's `maxAccessTokenTtlSeconds`. */
  readonly maxTokenLifetimeSeconds?: number;
  /** Longest accepted token, in bytes. Default 8192. */
  readonly maxTokenBytes?: number;
  /** Verified tokens remembered to skip repeated signature checks (never the revocation check). Default 10000; 0 disables. */
  readonly verifiedCacheSize?: number;
  /** How long the index may go without confirmed freshness before `stalePolicy` applies, in ms. Default 30000. */
  readonly maxStalenessMs?: number;
  /** `reject` (default): answer 503 while stale. `accept`: accept valid, unrevoked tokens and mark them `stale`. */
  readonly stalePolicy?: StalePolicy;
  /** An unknown `kid` refreshes the JWKS at most this often, in ms. Default 30000. */
  readonly jwksMinRefreshIntervalMs?: number;
  /** The JWKS is refreshed on this period regardless, in ms. Default 300000. */
  readonly jwksRefreshIntervalMs?: number;
  /** Backoff of reconnections to the feed. Default 250 ms doubling up to 10000 ms, with jitter. */
  readonly reconnect?: ReconnectOptions;
  /**
   * A feed silent this long (no entry, no new heartbeat) is reopened, or left for the next `feed`, in ms.
   * Default 20000 (the server's stream sends heartbeats every 5 s at most, the Redis relay about every second).
   */
  readonly idleTimeoutMs?: number;
  /**
   * How the guard follows the revocation log live (the snapshot is always loaded from the server over HTTP).
   * Default: `httpFeed()`, the server's event stream. A list is an order of preference: the guard uses the
   * first transport that works, falls back to the next when it fails, and while on a fallback probes the
   * earlier ones every `feedRetryIntervalMs` to return to them. E.g. `[redisFeed({ client }), httpFeed()]`
   * (`@revokd/guard/redis`): follow the server nodes' Redis stream, and the server itself while Redis is down.
   */
  readonly feed?: FeedTransport | readonly FeedTransport[];
  /** While on a fallback feed, how often the preferred ones are probed, in ms. Default 30000. */
  readonly feedRetryIntervalMs?: number;
  /** Timeout of metadata, JWKS and snapshot requests, in ms. Default 10000. */
  readonly requestTimeoutMs?: number;
  /** Expired rules are pruned from the index on this period, in ms. Default 60000. */
  readonly pruneIntervalMs?: number;
  /** {@link Guard.ready} rejects after this long, in ms. Default 30000. */
  readonly readyTimeoutMs?: number;
  /** Largest snapshot accepted, in bytes. Default 256 MiB. */
  readonly maxSnapshotBytes?: number;
  /** Largest feed event accepted, in characters. Default 16 Mi. */
  readonly maxEventChars?: number;
  /** Allow `http:` to non-loopback hosts. Default false. */
  readonly allowInsecureHttp?: boolean;
  /** Default: the global `fetch`. */
  readonly fetch?: FetchFunction;
  /** Milliseconds since the epoch. Default `Date.now`. */
  readonly now?: () => number;
}

export interface GuardHealth {
  /** The id this guard reports under (option `guardId`). */
  readonly guardId: string;
  readonly state: FeedState;
  /** The feed transport in use, or last used (`http`, `redis`): see option `feed`. */
  readonly feed: string;
  /** Cursor of the last revocation log entry applied. */
  readonly cursor: number;
  /** Cursor of the server's last heartbeat. */
  readonly serverCursor: number | undefined;
  /** Cursor last reported to the server in a receipt (and acknowledged by it); undefined before the first. */
  readonly reportedCursor: number | undefined;
  /** Milliseconds since freshness was last confirmed; undefined before the first snapshot. */
  readonly lagMs: number | undefined;
  readonly lastConfirmedAtMs: number | undefined;
  /** Distinct active entries in the revocation index (in allowlist mode, one per live issued token too). */
  readonly activeRules: number;
  /** Verification keys held. */
  readonly keys: number;
  readonly reconnects: number;
  readonly lastError: { readonly code: string; readonly message: string } | undefined;
}

export interface Guard {
  /** Resolves once keys are loaded and the revocation feed is live; rejects after `readyTimeoutMs` or on refused credentials. */
  ready(): Promise<void>;
  /**
   * Decides one request: pass the `Authorization` header value (or the bare token). Synchronous, no I/O, never
   * throws; a rejection allocates nothing. Verifies the token (the signature with `crypto.verify`, unless the
   * token was verified before), checks it against the revocation index (always), then applies the stale policy
   * (the guard's, or `options.stalePolicy`) if freshness is not confirmed.
   */
  check(authorizationHeaderOrToken: string | null | undefined, options?: CheckOptions): GuardDecision;
  health(): GuardHealth;
  /**
   * Adds a rule to this process's index only, e.g. from a back-channel logout token (see
   * `createBackchannelLogoutReceiver`). Local rules are kept apart from the feed's, so a snapshot reload does not
   * drop them; they apply until their `expiresAtMs`. Throws a `TypeError` for a malformed rule or an `allow` entry.
   */
  revokeLocally(rule: Rule): void;
  /** The verification keys the guard holds (the server's JWKS): pass them to a back-channel logout receiver. */
  readonly keys: KeyResolver;
  close(): Promise<void>;
}

const MALFORMED_HEADER = Symbol('malformed');

/**
 * Creates a guard and starts it: it fetches the keys and follows the revocation feed in the background.
 *
 * @example
 * ```ts
 * const guard = createGuard({ issuer: 'https://auth.example', audience: 'https://api.example',
 *   clientId: 'api', clientSecret: process.env.REVOKD_SECRET! });
 * await guard.ready();
 * const decision = guard.check(request.headers.authorization);
 * if (!decision.ok) { const answer = httpRejection(decision); ... }
 * ```
 */
export function createGuard(options: GuardOptions): Guard {
  return new RevokdGuard(options);
}

class RevokdGuard implements Guard {
  readonly #now: () => number;
  readonly #guardId: string;
  readonly #index: RevocationIndex;
  /** Rules from {@link Guard.revokeLocally}; checked only while it holds any. */
  readonly #localIndex = new RevocationIndex();
  #hasLocalRules = false;
  readonly #keys: RemoteKeySet;
  readonly #verifier: AccessTokenVerifier;
  readonly #maxTokenChars: number;
  readonly #follower: FeedFollower;
  readonly #acceptStale: boolean;
  readonly #readyTimeoutMs: number;
  readonly #reconnect: Required<ReconnectOptions>;
  readonly #closing = new AbortController();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #keysReady: Promise<void>;
  #keysLoop: Promise<void> | undefined;
  #ready: Promise<void> | undefined;

  constructor(options: GuardOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new GuardError('REVOKD_GUARD_CONFIG', 'options are required');
    }
    const issuer = requiredString(options.issuer, 'issuer');
    const clientId = requiredString(options.clientId, 'clientId');
    const clientSecret = requiredString(options.clientSecret, 'clientSecret');
    const guardId = options.guardId ?? defaultGuardId();
    if (typeof guardId !== 'string' || !GUARD_ID_PATTERN.test(guardId)) {
      throw new GuardError(
        'REVOKD_GUARD_CONFIG',
        'guardId must be 1-128 printable ASCII characters, no spaces',
      );
    }
    const insecure = options.allowInsecureHttp === true;
    const serverUrl = checkEndpointUrl(options.serverUrl ?? issuer, 'serverUrl', insecure).href;
    const jwksUri =
      options.jwksUri === undefined ? undefined : checkEndpointUrl(options.jwksUri, 'jwksUri', insecure).href;
    if (
      options.stalePolicy !== undefined &&
      options.stalePolicy !== 'reject' &&
      options.stalePolicy !== 'accept'
    ) {
      throw new GuardError('REVOKD_GUARD_CONFIG', "stalePolicy must be 'reject' or 'accept'");
    }
    if (options.mode !== undefined && options.mode !== 'denylist' && options.mode !== 'allowlist') {
      throw new GuardError('REVOKD_GUARD_CONFIG', "mode must be 'denylist' or 'allowlist'");
    }
    this.#index = new RevocationIndex({ allowlist: options.mode === 'allowlist' });
    const fetch = options.fetch ?? globalThis.fetch;
    if (typeof fetch !== 'function') throw new GuardError('REVOKD_GUARD_CONFIG', 'fetch must be a function');
    const now = options.now ?? Date.now;
    if (typeof now !== 'function') throw new GuardError('REVOKD_GUARD_CONFIG', 'now must be a function');
    const ms = (key: keyof GuardOptions, fallback: number, min: number, max: number) =>
      integerIn(options[key], fallback, min, max, key);
    const maxStalenessMs = ms('maxStalenessMs', 30_000, 100, 86_400_000);
    const requestTimeoutMs = ms('requestTimeoutMs', 10_000, 1, 600_000);
    const idleTimeoutMs = ms('idleTimeoutMs', 20_000, 100, 3_600_000);
    const pruneIntervalMs = ms('pruneIntervalMs', 60_000, 100, 86_400_000);
    const jwksRefreshIntervalMs = ms('jwksRefreshIntervalMs', 300_000, 1000, 86_400_000);
    const jwksMinRefreshIntervalMs = ms('jwksMinRefreshIntervalMs', 30_000, 0, 86_400_000);
    const maxSnapshotBytes = ms('maxSnapshotBytes', 256 * 1024 * 1024, 1024, 512 * 1024 * 1024);
    const maxEventChars = ms('maxEventChars', 16 * 1024 * 1024, 1024, 256 * 1024 * 1024);
    const feedRetryIntervalMs = ms('feedRetryIntervalMs', 30_000, 100, 86_400_000);
    const transports = feedTransports(options.feed);
    this.#readyTimeoutMs = ms('readyTimeoutMs', 30_000, 1, 3_600_000);
    this.#reconnect = {
      initialDelayMs: integerIn(
        options.reconnect?.initialDelayMs,
        250,
        1,
        600_000,
        'reconnect.initialDelayMs',
      ),
      maxDelayMs: integerIn(options.reconnect?.maxDelayMs, 10_000, 1, 3_600_000, 'reconnect.maxDelayMs'),
    };
    const algorithms = options.algorithms ?? GUARD_ALGORITHMS;

    this.#now = now;
    this.#guardId = guardId;
    this.#acceptStale = options.stalePolicy === 'accept';
    this.#keys = new RemoteKeySet({
      jwksUri:
        jwksUri ??
        (() =>
          discoverJwksUri({
            issuer,
            serverUrl,
            fetch,
            timeoutMs: requestTimeoutMs,
            allowInsecureHttp: insecure,
            signal: this.#closing.signal,
          })),
      algorithms,
      fetch,
      now,
      minRefreshIntervalMs: jwksMinRefreshIntervalMs,
      timeoutMs: requestTimeoutMs,
      onChange: () => this.#verifier.clearCache(),
    });
    this.#verifier = new AccessTokenVerifier({
      issuer,
      audience: options.audience,
      keys: this.#keys,
      algorithms,
      ...(options.clockSkewSeconds !== undefined ? { clockSkewSeconds: options.clockSkewSeconds } : {}),
      ...(options.maxTokenLifetimeSeconds !== undefined
        ? { maxTokenLifetimeSeconds: options.maxTokenLifetimeSeconds }
        : {}),
      ...(options.maxTokenBytes !== undefined ? { maxTokenBytes: options.maxTokenBytes } : {}),
      ...(options.verifiedCacheSize !== undefined ? { cacheSize: options.verifiedCacheSize } : {}),
      onUnknownKid: () => this.#keys.requestRefresh(),
    });
    this.#maxTokenChars = this.#verifier.maxTokenBytes;
    this.#follower = new FeedFollower({
      serverUrl,
      authorization: basicAuthorization(clientId, clientSecret),
      index: this.#index,
      fetch,
      now,
      maxStalenessMs,
      reconnect: this.#reconnect,
      idleTimeoutMs,
      requestTimeoutMs,
      maxSnapshotBytes,
      maxEventChars,
      guardId,
      transports,
      transportRetryMs: feedRetryIntervalMs,
    });

    this.#keysReady = new Promise<void>((resolve) => {
      this.#keysLoop = this.#loadKeys(resolve);
    });
    this.#follower.start();
    this.#every(pruneIntervalMs, () => {
      const entries = this.#index.prune(this.#now()) + this.#pruneLocal();
      if (entries > 0) emit(() => ({ type: 'pruned', entries }));
    });
    this.#every(jwksRefreshIntervalMs, () => {
      if (this.#keys.loaded) this.#keys.refresh().catch(() => {});
    });
  }

  ready(): Promise<void> {
    this.#ready ??= this.#waitReady();
    return this.#ready;
  }

  check(input: string | null | undefined, options?: CheckOptions): GuardDecision {
    const token = extractToken(input, this.#maxTokenChars);
    if (token === undefined) return MISSING_TOKEN;
    if (token === MALFORMED_HEADER) return INVALID_TOKEN.malformed;
    if (!this.#keys.loaded) return NOT_READY;
    const nowMs = this.#now();
    const verified = this.#verifier.verify(token, nowMs);
    if (!verified.ok) return INVALID_TOKEN[verified.reason];
    const revocation = this.#index.check(verified.facts, nowMs);
    if (revocation.revoked) return revocation.by === 'allowlist' ? NOT_ALLOWED : REVOKED[revocation.by];
    if (this.#hasLocalRules) {
      const local = this.#localIndex.check(verified.facts, nowMs);
      // The local index is never in allowlist mode.
      if (local.revoked && local.by !== 'allowlist') return REVOKED[local.by];
    }
    if (this.#follower.isFresh(nowMs)) return verified;
    // Any value other than the two policies fails closed.
    const acceptStale =
      options?.stalePolicy === undefined ? this.#acceptStale : options.stalePolicy === 'accept';
    return acceptStale ? { ...verified, stale: true } : STALE;
  }

  revokeLocally(rule: Rule): void {
    const parsed = parseRule(rule);
    if (parsed === undefined || parsed.kind === 'allow') throw new TypeError('not a valid revocation rule');
    this.#localIndex.add(parsed);
    this.#hasLocalRules = true;
  }

  get keys(): KeyResolver {
    return this.#keys;
  }

  health(): GuardHealth {
    const nowMs = this.#now();
    const feedState = this.#follower.state(nowMs);
    const lastError = this.#follower.lastError;
    return {
      guardId: this.#guardId,
      state: !this.#keys.loaded && feedState !== 'stale' ? 'starting' : feedState,
      feed: this.#follower.transport,
      cursor: this.#index.cursor,
      serverCursor: this.#follower.serverCursor,
      reportedCursor: this.#follower.reportedCursor,
      lagMs: this.#follower.lagMs(nowMs),
      lastConfirmedAtMs: this.#follower.lastConfirmedMs,
      activeRules: this.#index.size,
      keys: this.#keys.current.size,
      reconnects: this.#follower.reconnects,
      lastError: lastError ? { code: lastError.code, message: lastError.message } : undefined,
    };
  }

  async close(): Promise<void> {
    this.#closing.abort();
    for (const timer of this.#timers) clearInterval(timer);
    this.#keys.close();
    await Promise.all([this.#follower.close(), this.#keysLoop]);
  }

  #pruneLocal(): number {
    if (!this.#hasLocalRules) return 0;
    const dropped = this.#localIndex.prune(this.#now());
    this.#hasLocalRules = this.#localIndex.size > 0;
    return dropped;
  }

  async #loadKeys(loaded: () => void): Promise<void> {
    let attempt = 0;
    while (!this.#closing.signal.aborted) {
      try {
        await this.#keys.refresh();
        loaded();
        return;
      } catch {
        // Published as an event by the key set; retry.
      }
      try {
        const delayMs = backoffDelayMs(
          attempt++,
          this.#reconnect.initialDelayMs,
          this.#reconnect.maxDelayMs,
          Math.random,
        );
        await sleep(delayMs, undefined, { signal: this.#closing.signal });
      } catch {
        return;
      }
    }
  }

  async #waitReady(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const last = this.#follower.lastError;
        reject(
          new GuardError(
            'REVOKD_GUARD_NOT_READY',
            `not ready after ${this.#readyTimeoutMs} ms` +
              (this.#keys.loaded ? '' : ' (no keys yet)') +
              (last ? `: ${last.message}` : ''),
          ),
        );
      }, this.#readyTimeoutMs);
      timer.unref();
    });
    try {
      await Promise.race([Promise.all([this.#keysReady, this.#follower.ready]), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #every(periodMs: number, task: () => void): void {
    const timer = setInterval(task, periodMs);
    timer.unref();
    this.#timers.push(timer);
  }
}

/**
 * The token of an `Authorization` header value (or a bare token). `maxTokenChars` is the verifier's size limit.
 *
 * The common `Bearer <token>` form is cut without a regular expression: a header that starts with exactly
 * `Bearer ` and neither starts nor ends its credentials with whitespace or a control character yields them as
 * is. Whatever else they hold that the RFC 6750 `b64token` grammar refuses, the verifier refuses as `malformed`,
 * which is what the full parse answers for it; longer than the verifier accepts, the full parse decides.
 */
function extractToken(
  input: string | null | undefined,
  maxTokenChars: number,
): string | typeof MALFORMED_HEADER | undefined {
  if (typeof input !== 'string' || input.length === 0) return undefined;
  if (
    input.length > 7 &&
    input.length - 7 <= maxTokenChars &&
    input.charCodeAt(6) === 32 &&
    input.charCodeAt(7) > 32 &&
    input.charCodeAt(input.length - 1) > 32 &&
    input.startsWith('Bearer')
  ) {
    return input.slice(7);
  }
  if (input.indexOf(' ') === -1 && input.indexOf('\t') === -1) return input;
  const token = bearerToken(input);
  if (token !== undefined) return token;
  return isBearerScheme(input) ? MALFORMED_HEADER : undefined;
}

/** `<hostname>:<pid>:<random>`, with anything outside the guard id alphabet replaced. */
function defaultGuardId(): string {
  const host =
    hostname()
      .replace(/[^\x21-\x7E]/g, '-')
      .slice(0, 64) || 'guard';
  return `${host}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** The `feed` option as a non-empty list of transports. */
function feedTransports(feed: GuardOptions['feed']): readonly FeedTransport[] {
  if (feed === undefined) return [httpFeed()];
  const list: readonly unknown[] = Array.isArray(feed) ? feed : [feed];
  const valid = list.every(
    (transport) =>
      typeof transport === 'object' &&
      transport !== null &&
      typeof (transport as FeedTransport).name === 'string' &&
      typeof (transport as FeedTransport).follow === 'function',
  );
  if (list.length === 0 || !valid) {
    throw new GuardError(
      'REVOKD_GUARD_CONFIG',
      'feed must be a feed transport (httpFeed(), redisFeed(…)) or a non-empty list of them',
    );
  }
  return list as readonly FeedTransport[];
}

function requiredString(value: unknown, key: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new GuardError('REVOKD_GUARD_CONFIG', `${key} must be a non-empty string`);
  }
  return value;
}
