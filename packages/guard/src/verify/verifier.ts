import { base64url } from 'jose';
import { GuardError } from '../errors.ts';
import type { TokenFacts } from '../model/rule.ts';
import { tokenFacts } from '../model/token-facts.ts';
import { algorithmSet, type GuardAlgorithm, type KeyResolver, type VerificationKey } from './key-set.ts';
import { SignatureCheck, verifyCompactSignature } from './signature.ts';

/**
 * Why a token was rejected. Stable codes, safe to log and to count; never sent to the client by default.
 *
 * | reason | meaning |
 * |---|---|
 * | `malformed` | not a compact JWS of three base64url segments, or header/payload not a JSON object |
 * | `oversized` | longer than `maxTokenBytes` |
 * | `alg_not_allowed` | `alg` outside the allowlist (`none`, `HS256`, …) |
 * | `typ_invalid` | `typ` is not `at+jwt` (RFC 9068 §2.1) |
 * | `crit_unsupported` | a `crit` header: the guard understands no extension (RFC 7515 §4.1.11) |
 * | `kid_missing` | no `kid` header |
 * | `kid_unknown` | no published key has this `kid` (a key-set refresh is requested, rate-limited) |
 * | `key_mismatch` | the key with this `kid` may not be used with this `alg` |
 * | `signature_invalid` | the signature does not verify |
 * | `iss_invalid` | `iss` is not the configured issuer |
 * | `aud_invalid` | `aud` does not name this resource server |
 * | `claim_missing` | a required claim (`iss sub aud exp iat jti client_id`) is absent |
 * | `claim_invalid` | a claim has the wrong type, a non-finite number, or `exp` before `iat` |
 * | `expired` | `exp` has passed (beyond the clock skew) |
 * | `not_yet_valid` | `nbf` is in the future (beyond the clock skew) |
 * | `iat_in_future` | issued in the future (beyond the clock skew) |
 * | `lifetime_exceeded` | `exp - iat` exceeds `maxTokenLifetimeSeconds` |
 */
export const VERIFY_FAILURE_REASONS = [
  'malformed',
  'oversized',
  'alg_not_allowed',
  'typ_invalid',
  'crit_unsupported',
  'kid_missing',
  'kid_unknown',
  'key_mismatch',
  'signature_invalid',
  'iss_invalid',
  'aud_invalid',
  'claim_missing',
  'claim_invalid',
  'expired',
  'not_yet_valid',
  'iat_in_future',
  'lifetime_exceeded',
] as const;
export type VerifyFailureReason = (typeof VERIFY_FAILURE_REASONS)[number];

/** The claims of a verified RFC 9068 access token. Deeply frozen: the same object may be handed out again. */
export interface AccessTokenClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | readonly string[];
  readonly exp: number;
  readonly iat: number;
  readonly jti: string;
  readonly client_id: string;
  readonly nbf?: number;
  readonly scope?: string;
  readonly sid?: string;
  readonly [claim: string]: unknown;
}

export interface VerifiedToken {
  readonly ok: true;
  readonly claims: AccessTokenClaims;
  /** What the revocation check needs, extracted once. */
  readonly facts: TokenFacts;
}

export interface VerifyRejection {
  readonly ok: false;
  readonly error: 'invalid_token';
  readonly reason: VerifyFailureReason;
}

/** The verifier's answer: a value, never an exception. */
export type VerifyDecision = VerifiedToken | VerifyRejection;

export interface VerifierOptions {
  /** Expected `iss`, compared exactly (RFC 9068 §4). */
  readonly issuer: string;
  /** This resource server's identifier(s); the token's `aud` must contain one of them (RFC 9068 §4). */
  readonly audience: string | readonly string[];
  /** Where verification keys come from. Keys named by `jku`, `x5u`, `jwk` or `x5c` headers are never used. */
  readonly keys: KeyResolver;
  /** Accepted signature algorithms. Default: all of {@link GUARD_ALGORITHMS}. */
  readonly algorithms?: readonly GuardAlgorithm[];
  /** Tolerance for clock differences when checking `exp`, `nbf` and `iat`, in seconds, 0-300. Default 30. */
  readonly clockSkewSeconds?: number;
  /**
   * The longest lifetime (`exp - iat`) accepted, in seconds. Default 3600. Keep it at or below the server's
   * `tokens.maxAccessTokenTtlSeconds`: not-before rules expire after that long, so a longer-lived token could
   * outlive the rule that revoked it.
   */
  readonly maxTokenLifetimeSeconds?: number;
  /** Longest token accepted, in bytes (characters: a valid token is ASCII). Default 8192. */
  readonly maxTokenBytes?: number;
  /**
   * How many verified tokens to remember, so a repeated token skips signature verification (its time claims
   * are checked again on every use). 0 disables. Default 10000. Cleared whenever the key set changes.
   */
  readonly cacheSize?: number;
  /** Called (synchronously, on the hot path: keep it cheap) when a well-formed token names an unknown `kid`. */
  readonly onUnknownKid?: (kid: string) => void;
}

const DEFAULTS = {
  clockSkewSeconds: 30,
  maxTokenLifetimeSeconds: 3600,
  maxTokenBytes: 8192,
  cacheSize: 10_000,
} as const;

/** RFC 9068 §2.1 / §4: `typ` is `at+jwt`, possibly written as the full media type; compared case-insensitively. */
const ACCEPTED_TYP = new Set(['at+jwt', 'application/at+jwt']);
// The signature may be empty here, so `alg: none` tokens are rejected for their algorithm, not their shape.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

const REJECTIONS = Object.freeze(
  Object.fromEntries(
    VERIFY_FAILURE_REASONS.map((reason) => [
      reason,
      Object.freeze({ ok: false, error: 'invalid_token', reason } satisfies VerifyRejection),
    ]),
  ),
) as Readonly<Record<VerifyFailureReason, VerifyRejection>>;

/** The frozen rejection value for a reason (the verifier returns these, so rejections allocate nothing). */
export function verifyRejection(reason: VerifyFailureReason): VerifyRejection {
  return REJECTIONS[reason];
}

/**
 * A lean verifier of JWT access tokens (RFC 9068) following the JWT best current practices (RFC 8725):
 * an allowlist of asymmetric algorithms, keys only from the configured key set (looked up by `kid` and bound
 * to one algorithm each), explicit `typ`, no `crit` extensions, exact issuer, audience, bounded clock skew,
 * a maximum lifetime and a maximum size. Signatures are verified synchronously with `node:crypto` on keys
 * imported once ({@link VerificationKey}); base64url and JSON decoding are jose's and Node's.
 *
 * Cheap checks run first, so malformed, foreign or expired tokens cost no signature verification. Every answer
 * is a {@link VerifyDecision} value, returned synchronously; rejections are shared frozen objects.
 */
export class AccessTokenVerifier {
  readonly #issuer: string;
  readonly #audiences: ReadonlySet<string>;
  readonly #keys: KeyResolver;
  readonly #algorithms: ReadonlySet<string>;
  readonly #skewMs: number;
  readonly #maxLifetimeSeconds: number;
  readonly #maxTokenBytes: number;
  readonly #cacheSize: number;
  readonly #onUnknownKid: ((kid: string) => void) | undefined;
  /**
   * Verified tokens, keyed by the last {@link CACHE_KEY_CHARS} characters of the token (in its signature),
   * each entry holding the whole token: a hit is confirmed by comparing the whole token, so the key only
   * spares hashing the whole token string on every lookup. Insertion order is age order (oldest evicted first).
   */
  readonly #cache = new Map<string, CacheEntry>();

  constructor(options: VerifierOptions) {
    this.#issuer = requireString(options.issuer, 'issuer');
    const audiences =
      typeof options.audience === 'string' ? [options.audience] : [...(options.audience ?? [])];
    if (audiences.length === 0 || audiences.some((a) => typeof a !== 'string' || a.length === 0)) {
      throw new GuardError('REVOKD_GUARD_CONFIG', 'audience must be a non-empty string or array of strings');
    }
    this.#audiences = new Set(audiences);
    if (typeof options.keys?.lookup !== 'function') {
      throw new GuardError('REVOKD_GUARD_CONFIG', 'keys must be a key resolver');
    }
    this.#keys = options.keys;
    this.#algorithms = algorithmSet(options.algorithms);
    this.#skewMs =
      1000 * integerIn(options.clockSkewSeconds, DEFAULTS.clockSkewSeconds, 0, 300, 'clockSkewSeconds');
    this.#maxLifetimeSeconds = integerIn(
      options.maxTokenLifetimeSeconds,
      DEFAULTS.maxTokenLifetimeSeconds,
      1,
      366 * 86_400,
      'maxTokenLifetimeSeconds',
    );
    this.#maxTokenBytes = integerIn(
      options.maxTokenBytes,
      DEFAULTS.maxTokenBytes,
      64,
      1 << 20,
      'maxTokenBytes',
    );
    this.#cacheSize = integerIn(options.cacheSize, DEFAULTS.cacheSize, 0, 10_000_000, 'cacheSize');
    this.#onUnknownKid = options.onUnknownKid;
  }

  /**
   * Verifies a compact JWT access token at instant `nowMs` (milliseconds since the epoch). Synchronous: the
   * signature is checked with `crypto.verify`, unless the token is remembered from an earlier verification (its
   * time claims are checked again). Never throws for a bad token.
   */
  verify(token: string, nowMs: number): VerifyDecision {
    if (typeof token !== 'string' || token.length === 0) return REJECTIONS.malformed;
    if (token.length > this.#maxTokenBytes) return REJECTIONS.oversized;

    if (this.#cacheSize > 0) {
      const key = cacheKey(token);
      const cached = this.#cache.get(key);
      if (cached !== undefined && cached.token === token) {
        const late = this.#timeRejection(cached.verified.claims, nowMs);
        if (late === undefined) return cached.verified;
        if (late === REJECTIONS.expired) this.#cache.delete(key);
        return late;
      }
    }

    if (!COMPACT_JWS.test(token)) return REJECTIONS.malformed;
    const firstDot = token.indexOf('.');
    const secondDot = token.indexOf('.', firstDot + 1);

    const header = decodeJsonObject(token.slice(0, firstDot));
    if (header === undefined) return REJECTIONS.malformed;
    const alg = header.alg;
    if (typeof alg !== 'string' || !this.#algorithms.has(alg)) return REJECTIONS.alg_not_allowed;
    const typ = header.typ;
    if (typeof typ !== 'string' || !(typ === 'at+jwt' || ACCEPTED_TYP.has(typ.toLowerCase()))) {
      return REJECTIONS.typ_invalid;
    }
    if (header.crit !== undefined) return REJECTIONS.crit_unsupported;
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0) return REJECTIONS.kid_missing;

    const payload = decodeJsonObject(token.slice(firstDot + 1, secondDot));
    if (payload === undefined) return REJECTIONS.malformed;
    const claimRejection = this.#claimRejection(payload, nowMs);
    if (claimRejection !== undefined) return claimRejection;

    const byAlg = this.#keys.lookup(kid);
    if (byAlg === undefined) {
      this.#onUnknownKid?.(kid);
      return REJECTIONS.kid_unknown;
    }
    const key = byAlg.get(alg);
    if (key === undefined) return REJECTIONS.key_mismatch;
    const signature = verifyCompactSignature(token, secondDot, key);
    if (signature !== SignatureCheck.Valid) {
      return signature === SignatureCheck.Malformed ? REJECTIONS.malformed : REJECTIONS.signature_invalid;
    }

    const claims = deepFreeze(payload) as AccessTokenClaims;
    const verified: VerifiedToken = Object.freeze({
      ok: true,
      claims,
      facts: Object.freeze(tokenFacts(claims)),
    });
    if (this.#cacheSize > 0) this.#remember(token, verified);
    return verified;
  }

  /** Forgets every remembered token. Call it whenever the key set changes (a key may have been withdrawn). */
  clearCache(): void {
    this.#cache.clear();
  }

  /** The longest token accepted, in bytes (characters). */
  get maxTokenBytes(): number {
    return this.#maxTokenBytes;
  }

  /** How many verified tokens are remembered. */
  get cachedTokens(): number {
    return this.#cache.size;
  }

  #remember(token: string, verified: VerifiedToken): void {
    const key = cacheKey(token);
    if (this.#cache.size >= this.#cacheSize && !this.#cache.has(key)) {
      const oldest = this.#cache.keys().next();
      if (!oldest.done) this.#cache.delete(oldest.value);
    }
    this.#cache.set(key, { token, verified });
  }

  #claimRejection(payload: Record<string, unknown>, nowMs: number): VerifyRejection | undefined {
    const { iss, aud, exp, iat, nbf } = payload;
    if (iss === undefined) return REJECTIONS.claim_missing;
    if (iss !== this.#issuer) return REJECTIONS.iss_invalid;
    if (aud === undefined) return REJECTIONS.claim_missing;
    const audRejection = this.#audienceRejection(aud);
    if (audRejection !== undefined) return audRejection;
    const missingOrInvalid =
      requiredString(payload.sub) ??
      requiredString(payload.jti) ??
      requiredString(payload.client_id) ??
      requiredNumber(exp) ??
      requiredNumber(iat) ??
      optionalNumber(nbf) ??
      optionalString(payload.scope) ??
      optionalString(payload.sid) ??
      optionalString(payload.fid);
    if (missingOrInvalid !== undefined) return missingOrInvalid;
    if ((exp as number) < (iat as number)) return REJECTIONS.claim_invalid;
    if ((exp as number) - (iat as number) > this.#maxLifetimeSeconds) return REJECTIONS.lifetime_exceeded;
    return this.#timeRejection(payload as unknown as AccessTokenClaims, nowMs);
  }

  #audienceRejection(aud: unknown): VerifyRejection | undefined {
    if (typeof aud === 'string') return this.#audiences.has(aud) ? undefined : REJECTIONS.aud_invalid;
    if (!Array.isArray(aud)) return REJECTIONS.claim_invalid;
    let found = false;
    for (const item of aud) {
      if (typeof item !== 'string') return REJECTIONS.claim_invalid;
      if (this.#audiences.has(item)) found = true;
    }
    return found ? undefined : REJECTIONS.aud_invalid;
  }

  /** The time checks, repeated on every use of a remembered token. */
  #timeRejection(claims: AccessTokenClaims, nowMs: number): VerifyRejection | undefined {
    if (nowMs >= claims.exp * 1000 + this.#skewMs) return REJECTIONS.expired;
    if (claims.nbf !== undefined && nowMs < claims.nbf * 1000 - this.#skewMs) return REJECTIONS.not_yet_valid;
    if (nowMs < claims.iat * 1000 - this.#skewMs) return REJECTIONS.iat_in_future;
    return undefined;
  }
}

interface CacheEntry {
  readonly token: string;
  readonly verified: VerifiedToken;
}

/**
 * How many characters of a token key the verified-token cache: the end of the signature, ~130 bits of it
 * (a key may collide: every hit is confirmed against the whole token).
 */
const CACHE_KEY_CHARS = 22;

function cacheKey(token: string): string {
  return token.length > CACHE_KEY_CHARS ? token.slice(token.length - CACHE_KEY_CHARS) : token;
}

/** Decodes one base64url segment of a compact JWS as a JSON object (strict UTF-8), or undefined. */
export function decodeJsonObject(segment: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(strictUtf8.decode(base64url.decode(segment)));
  } catch {
    return undefined;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function requiredString(value: unknown): VerifyRejection | undefined {
  if (value === undefined) return REJECTIONS.claim_missing;
  return typeof value === 'string' && value.length > 0 ? undefined : REJECTIONS.claim_invalid;
}

function optionalString(value: unknown): VerifyRejection | undefined {
  return value === undefined || typeof value === 'string' ? undefined : REJECTIONS.claim_invalid;
}

function requiredNumber(value: unknown): VerifyRejection | undefined {
  if (value === undefined) return REJECTIONS.claim_missing;
  return typeof value === 'number' && Number.isFinite(value) ? undefined : REJECTIONS.claim_invalid;
}

function optionalNumber(value: unknown): VerifyRejection | undefined {
  return value === undefined || (typeof value === 'number' && Number.isFinite(value))
    ? undefined
    : REJECTIONS.claim_invalid;
}

function deepFreeze(value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

function requireString(value: unknown, key: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new GuardError('REVOKD_GUARD_CONFIG', `${key} must be a non-empty string`);
  }
  return value;
}

/** Reads an integer option in `[min, max]`, or its default when absent; the error names the key. */
export function integerIn(value: unknown, fallback: number, min: number, max: number, key: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new GuardError('REVOKD_GUARD_CONFIG', `${key} must be an integer from ${min} to ${max}`);
  }
  return value;
}
