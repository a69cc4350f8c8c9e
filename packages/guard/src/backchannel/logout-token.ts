import { GuardError } from '../errors.ts';
import { algorithmSet, type GuardAlgorithm, type KeyResolver } from '../verify/key-set.ts';
import { SignatureCheck, verifyCompactSignature } from '../verify/signature.ts';
import { decodeJsonObject, integerIn } from '../verify/verifier.ts';

/** The member of the `events` claim that makes a JWT a logout token (OpenID Connect Back-Channel Logout 1.0 §2.4). */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** The explicit `typ` header of a logout token (§2.4, §4.1). */
export const LOGOUT_TOKEN_TYP = 'logout+jwt';

/**
 * Why a logout token was rejected. Stable codes, safe to log; the sender only ever sees `400 invalid_request`.
 *
 * | reason | meaning |
 * |---|---|
 * | `malformed` | not a compact JWS, or header/payload not a JSON object |
 * | `oversized` | longer than `maxTokenBytes` |
 * | `alg_not_allowed` | `alg` outside the allowlist (`none`, `HS256`, …) |
 * | `typ_invalid` | a `typ` other than `logout+jwt` (or the generic `JWT`): e.g. an access token's `at+jwt` |
 * | `crit_unsupported` | a `crit` header |
 * | `kid_missing` / `kid_unknown` / `key_mismatch` | no `kid`; no published key has it; that key may not use this `alg` |
 * | `signature_invalid` | the signature does not verify |
 * | `iss_invalid` / `aud_invalid` | `iss` is not the issuer; `aud` does not contain the client id |
 * | `claim_missing` / `claim_invalid` | `iss aud iat jti` absent, or a claim of the wrong type |
 * | `expired` | `exp` has passed (beyond the clock skew) |
 * | `iat_too_old` / `iat_in_future` | issued more than `maxTokenAgeSeconds` ago, or in the future (beyond the skew) |
 * | `events_invalid` | no `events` claim, no back-channel-logout member in it, or a member that is not an object |
 * | `nonce_present` | a `nonce` claim: prohibited, so an ID token can never pass as a logout token (§2.4) |
 * | `subject_missing` | neither `sid` nor `sub` |
 * | `replayed` | a token with this `jti` was already accepted |
 */
export const LOGOUT_REJECT_REASONS = [
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
  'iat_too_old',
  'iat_in_future',
  'events_invalid',
  'nonce_present',
  'subject_missing',
  'replayed',
] as const;
export type LogoutRejectReason = (typeof LOGOUT_REJECT_REASONS)[number];

/** A validated logout token: end the session `sid`, or (without `sid`) every session of `sub` at `iss`. */
export interface BackchannelLogout {
  readonly iss: string;
  readonly jti: string;
  /** Seconds since the epoch. */
  readonly iat: number;
  readonly exp: number | undefined;
  readonly sid: string | undefined;
  readonly sub: string | undefined;
  /** Every claim of the token, frozen. */
  readonly claims: Readonly<Record<string, unknown>>;
}

export type LogoutTokenDecision =
  | { readonly ok: true; readonly logout: BackchannelLogout }
  | { readonly ok: false; readonly reason: LogoutRejectReason };

export interface LogoutTokenValidatorOptions {
  /** The OpenID provider's issuer identifier; `iss` must equal it exactly. */
  readonly issuer: string;
  /** This relying party's `client_id`; `aud` must be it or contain it. */
  readonly audience: string;
  /** The provider's signing keys (a {@link KeySet}, a {@link RemoteKeySet}, or a guard's `keys`). */
  readonly keys: KeyResolver;
  /** Accepted signature algorithms. Default: EdDSA, ES256, RS256, PS256 (asymmetric only, never `none`). */
  readonly algorithms?: readonly GuardAlgorithm[];
  /** Tolerance for `iat` and `exp`, in seconds (0-300). Default 30. */
  readonly clockSkewSeconds?: number;
  /** A token issued longer ago than this is refused, `exp` or not, in seconds (1-86400). Default 300. */
  readonly maxTokenAgeSeconds?: number;
  /** Longest accepted token, in bytes. Default 8192. */
  readonly maxTokenBytes?: number;
  /**
   * Accepted `jti`s remembered to refuse replays, each until the token could no longer be accepted anyway.
   * When full, expired entries go first, then the oldest. Default 10000.
   */
  readonly replayCacheSize?: number;
  /** Called when a well-formed token names an unknown `kid` (e.g. to refresh the key set). */
  readonly onUnknownKid?: (kid: string) => void;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** `logout+jwt` per §2.4; the generic `JWT` (or none) is tolerated: the `events` and `nonce` checks still apply. */
const ACCEPTED_TYP = new Set(['logout+jwt', 'application/logout+jwt', 'jwt', 'application/jwt']);

const rejection = (reason: LogoutRejectReason): LogoutTokenDecision => REJECTIONS[reason];
const REJECTIONS = Object.freeze(
  Object.fromEntries(LOGOUT_REJECT_REASONS.map((reason) => [reason, Object.freeze({ ok: false, reason })])),
) as Readonly<Record<LogoutRejectReason, LogoutTokenDecision>>;

/**
 * Validates OpenID Connect Back-Channel Logout tokens (§2.6): signature with the issuer's keys under an algorithm
 * allowlist, explicit or absent `typ`, exact `iss`, `aud` containing the client id, bounded `iat`, `exp` when
 * present, the `events` member, `sid` or `sub`, no `nonce`, and a bounded replay cache of `jti`s.
 *
 * @see https://openid.net/specs/openid-connect-backchannel-1_0.html#Validation
 */
export class LogoutTokenValidator {
  readonly #issuer: string;
  readonly #audience: string;
  readonly #keys: KeyResolver;
  readonly #algorithms: ReadonlySet<string>;
  readonly #skewMs: number;
  readonly #maxAgeMs: number;
  readonly #maxTokenBytes: number;
  readonly #replayCacheSize: number;
  readonly #onUnknownKid: ((kid: string) => void) | undefined;
  /** jti → instant (ms) after which the token would be refused anyway. Insertion order is age order. */
  readonly #seen = new Map<string, number>();

  constructor(options: LogoutTokenValidatorOptions) {
    this.#issuer = nonEmpty(options.issuer, 'issuer');
    this.#audience = nonEmpty(options.audience, 'audience');
    if (typeof options.keys?.lookup !== 'function') {
      throw new GuardError('REVOKD_GUARD_CONFIG', 'keys must be a key resolver');
    }
    this.#keys = options.keys;
    this.#algorithms = algorithmSet(options.algorithms);
    this.#skewMs = 1000 * integerIn(options.clockSkewSeconds, 30, 0, 300, 'clockSkewSeconds');
    this.#maxAgeMs = 1000 * integerIn(options.maxTokenAgeSeconds, 300, 1, 86_400, 'maxTokenAgeSeconds');
    this.#maxTokenBytes = integerIn(options.maxTokenBytes, 8192, 64, 1 << 20, 'maxTokenBytes');
    this.#replayCacheSize = integerIn(options.replayCacheSize, 10_000, 1, 10_000_000, 'replayCacheSize');
    this.#onUnknownKid = options.onUnknownKid;
  }

  /**
   * Validates a logout token at instant `nowMs` (ms since the epoch) and, when it is valid and new, remembers its
   * `jti` so the same token is refused next time. Synchronous (the signature is checked with `crypto.verify`, as
   * the access-token verifier does); never throws for a bad token.
   */
  validate(token: string, nowMs: number): LogoutTokenDecision {
    if (typeof token !== 'string' || token.length === 0) return rejection('malformed');
    if (token.length > this.#maxTokenBytes) return rejection('oversized');
    if (!COMPACT_JWS.test(token)) return rejection('malformed');
    const firstDot = token.indexOf('.');
    const secondDot = token.indexOf('.', firstDot + 1);
    const encodedHeader = token.slice(0, firstDot);
    const encodedPayload = token.slice(firstDot + 1, secondDot);

    const header = decodeJsonObject(encodedHeader);
    if (header === undefined) return rejection('malformed');
    const alg = header.alg;
    if (typeof alg !== 'string' || !this.#algorithms.has(alg)) return rejection('alg_not_allowed');
    if (
      header.typ !== undefined &&
      !(typeof header.typ === 'string' && ACCEPTED_TYP.has(header.typ.toLowerCase()))
    ) {
      return rejection('typ_invalid');
    }
    if (header.crit !== undefined) return rejection('crit_unsupported');
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0) return rejection('kid_missing');

    const payload = decodeJsonObject(encodedPayload);
    if (payload === undefined) return rejection('malformed');
    const claimRejection = this.#claimRejection(payload, nowMs);
    if (claimRejection !== undefined) return claimRejection;

    const byAlg = this.#keys.lookup(kid);
    if (byAlg === undefined) {
      this.#onUnknownKid?.(kid);
      return rejection('kid_unknown');
    }
    const key = byAlg.get(alg);
    if (key === undefined) return rejection('key_mismatch');
    const signature = verifyCompactSignature(token, secondDot, key);
    if (signature !== SignatureCheck.Valid) {
      return signature === SignatureCheck.Malformed ? rejection('malformed') : rejection('signature_invalid');
    }

    // Synchronous throughout: two deliveries of one token cannot both pass.
    const jti = payload.jti as string;
    this.#forgetExpired(nowMs);
    if (this.#seen.has(jti)) return rejection('replayed');
    const iat = payload.iat as number;
    const exp = payload.exp as number | undefined;
    this.#remember(jti, Math.max(iat * 1000 + this.#maxAgeMs, (exp ?? 0) * 1000) + this.#skewMs);
    deepFreeze(payload);
    return {
      ok: true,
      logout: Object.freeze({
        iss: payload.iss as string,
        jti,
        iat,
        exp,
        sid: payload.sid as string | undefined,
        sub: payload.sub as string | undefined,
        claims: payload,
      }),
    };
  }

  /** Forgets an accepted `jti`, so the same token may be delivered again (after the logout itself failed). */
  forget(jti: string): void {
    this.#seen.delete(jti);
  }

  /** How many `jti`s are remembered. */
  get rememberedTokens(): number {
    return this.#seen.size;
  }

  #claimRejection(payload: Record<string, unknown>, nowMs: number): LogoutTokenDecision | undefined {
    const { iss, aud, iat, exp, jti, events, sid, sub } = payload;
    if (iss === undefined || aud === undefined || iat === undefined || jti === undefined) {
      return rejection('claim_missing');
    }
    if (iss !== this.#issuer) return rejection('iss_invalid');
    if (typeof aud === 'string') {
      if (aud !== this.#audience) return rejection('aud_invalid');
    } else if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) {
      if (!aud.includes(this.#audience)) return rejection('aud_invalid');
    } else {
      return rejection('claim_invalid');
    }
    if (!isFiniteNumber(iat) || (exp !== undefined && !isFiniteNumber(exp)))
      return rejection('claim_invalid');
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 512) return rejection('claim_invalid');
    if (!optionalId(sid) || !optionalId(sub)) return rejection('claim_invalid');
    if (exp !== undefined && (exp as number) < iat) return rejection('claim_invalid');
    if (exp !== undefined && nowMs >= (exp as number) * 1000 + this.#skewMs) return rejection('expired');
    if (nowMs < iat * 1000 - this.#skewMs) return rejection('iat_in_future');
    if (nowMs > iat * 1000 + this.#maxAgeMs + this.#skewMs) return rejection('iat_too_old');
    if (!isObject(events) || !isObject(events[BACKCHANNEL_LOGOUT_EVENT])) return rejection('events_invalid');
    if (payload.nonce !== undefined) return rejection('nonce_present');
    if (sid === undefined && sub === undefined) return rejection('subject_missing');
    return undefined;
  }

  #forgetExpired(nowMs: number): void {
    // Entries are in insertion order, which is close to expiry order: stop at the first live one.
    for (const [jti, until] of this.#seen) {
      if (until > nowMs) break;
      this.#seen.delete(jti);
    }
  }

  #remember(jti: string, untilMs: number): void {
    if (this.#seen.size >= this.#replayCacheSize) {
      const oldest = this.#seen.keys().next();
      if (!oldest.done) this.#seen.delete(oldest.value);
    }
    this.#seen.set(jti, untilMs);
  }
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalId(value: unknown): boolean {
  return value === undefined || (typeof value === 'string' && value.length > 0 && value.length <= 1024);
}

function nonEmpty(value: unknown, key: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new GuardError('REVOKD_GUARD_CONFIG', `${key} must be a non-empty string`);
  }
  return value;
}

function deepFreeze(value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}
