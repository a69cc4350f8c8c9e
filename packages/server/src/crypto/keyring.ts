import type { JsonWebKey } from 'node:crypto';
import { VerificationKey } from '@revokd/guard';
import {
  calculateJwkThumbprint,
  errors,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
} from 'jose';
import type { SigningAlgorithm } from '../config/schema.ts';
import { SIGNING_ALGORITHMS } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { RevokdError } from '../core/errors.ts';
import type { AuditEvent, SigningKeyRecord, Store } from '../store/port.ts';
import { parseCompactJws, SigningKey } from './jws.ts';

/** A key record with its `node:crypto` keys, imported once per record (signing and verifying are synchronous). */
interface LoadedKey {
  readonly record: SigningKeyRecord;
  readonly signer: SigningKey;
  readonly verifier: VerificationKey;
}

/** A token verified earlier, and what it was verified with: reused only while the same key is published. */
interface VerifiedEntry {
  readonly token: string;
  readonly issuer: string;
  readonly typ: string;
  readonly key: LoadedKey;
  readonly payload: JWTPayload;
}

/** Verified tokens remembered, so a token introspected again (a resource server's pattern) skips its signature. */
const VERIFIED_CACHE_SIZE = 5_000;
/** The cache key: the end of the signature (~130 bits); a hit is confirmed against the whole token. */
const VERIFIED_KEY_CHARS = 22;

export interface KeyringOptions {
  readonly algorithm: SigningAlgorithm;
  /** Retired keys stay published this long: the longest access-token lifetime plus clock skew. */
  readonly retiredPublishMs: number;
}

/**
 * The server's signing keys: one active key signs; retired keys stay in the JWKS until every token they signed has
 * expired; revoked keys (compromise) are dropped at once. Keys live in the store, so every server node and the CLI
 * see the same set; {@link Keyring.reload} picks up changes made elsewhere.
 */
export class Keyring {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #options: KeyringOptions;
  #keys = new Map<string, LoadedKey>();
  #active: LoadedKey | undefined;
  #jwks: JSONWebKeySet = { keys: [] };
  readonly #verified = new Map<string, VerifiedEntry>();

  constructor(store: Store, clock: Clock, options: KeyringOptions) {
    this.#store = store;
    this.#clock = clock;
    this.#options = options;
  }

  /** Loads the keys, creating the first one when the store has none. */
  async init(actor = 'system'): Promise<void> {
    await this.reload();
    if (this.#active) return;
    try {
      await this.rotate(actor);
    } catch (error) {
      // Another node starting on the same empty store created the first key a moment earlier: use that one.
      if (!(error instanceof RevokdError && error.code === 'REVOKD_STORE_CONFLICT')) throw error;
      await this.reload();
      if (!this.#active) throw error;
    }
  }

  /** Reloads the key set from the store. */
  async reload(): Promise<void> {
    const records = await this.#store.listSigningKeys();
    const next = new Map<string, LoadedKey>();
    for (const record of records) {
      const loaded = this.#keys.get(record.kid);
      next.set(
        record.kid,
        loaded &&
          loaded.record.state === record.state &&
          loaded.record.publishUntilMs === record.publishUntilMs
          ? loaded
          : loadKey(record),
      );
    }
    this.#keys = next;
    this.#active = [...next.values()].find((k) => k.record.state === 'active');
    this.#jwks = { keys: this.#published().map((k) => ({ ...k.record.publicJwk })) as JWK[] };
  }

  /** The published key set (RFC 7517), active key first. */
  get jwks(): JSONWebKeySet {
    return this.#jwks;
  }

  get activeKid(): string | undefined {
    return this.#active?.record.kid;
  }

  list(): readonly SigningKeyRecord[] {
    return [...this.#keys.values()].map((k) => k.record);
  }

  /** Signs a JWT with the active key, with the given `typ` header (synchronously: see {@link SigningKey}). */
  async sign(payload: JWTPayload, typ: string): Promise<string> {
    const active = this.#active;
    if (!active) throw new RevokdError('REVOKD_NO_SIGNING_KEY', 'no active signing key');
    return active.signer.sign({ alg: active.record.alg, kid: active.record.kid, typ }, payload);
  }

  /**
   * Verifies a JWT signed by one of our published keys, with our issuer and the given `typ`. Only algorithms
   * revokd signs with are accepted, and only a key whose own `alg` matches the header: no algorithm confusion.
   * No `crit` extension is understood, so a token carrying one is refused. Throws jose's errors (with stable
   * `code`s) on failure, as `jwtVerify` did: `JWTExpired` for an expired token, `JWTClaimValidationFailed`,
   * `JWSSignatureVerificationFailed`, `JWTInvalid`/`JWSInvalid` for malformed ones; a `RevokdError` for an unknown
   * or unpublished key.
   *
   * The signature is checked synchronously with `crypto.verify` (the guard's `VerificationKey`), and a verified
   * token is remembered: presented again while its key is still published, only its time claims are checked.
   */
  async verify(
    token: string,
    options: { issuer: string; typ: string; currentDate?: Date },
  ): Promise<JWTPayload> {
    // Time comes from the runtime's clock, like every other time decision (exp, nbf, rule expiry).
    const nowSeconds = Math.floor((options.currentDate?.getTime() ?? this.#clock.nowMs()) / 1000);
    const cacheKey = token.slice(-VERIFIED_KEY_CHARS);
    const cached = this.#verified.get(cacheKey);
    if (
      cached !== undefined &&
      cached.token === token &&
      cached.issuer === options.issuer &&
      cached.typ === options.typ &&
      this.#keys.get(cached.key.record.kid) === cached.key &&
      this.#isPublished(cached.key)
    ) {
      checkTimes(cached.payload, nowSeconds);
      return cached.payload;
    }

    const { header, payload, signingInput, signature } = parseCompactJws(token);
    if (header.crit !== undefined) throw new errors.JOSENotSupported('no "crit" extension is supported');
    const alg = header.alg;
    if (typeof alg !== 'string' || !(SIGNING_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
    }
    const key = header.kid === undefined ? undefined : this.#keys.get(header.kid);
    if (!key || !this.#isPublished(key) || key.record.alg !== alg) {
      throw new RevokdError('REVOKD_NOT_FOUND', 'no matching published key');
    }
    if (!key.verifier.verify(signingInput, signature)) throw new errors.JWSSignatureVerificationFailed();
    if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== normalizeTyp(options.typ)) {
      throw new errors.JWTClaimValidationFailed(
        'unexpected "typ" JWT header value',
        payload,
        'typ',
        'check_failed',
      );
    }
    if (!Object.hasOwn(payload, 'iss')) {
      throw new errors.JWTClaimValidationFailed('missing required "iss" claim', payload, 'iss', 'missing');
    }
    if (payload.iss !== options.issuer) {
      throw new errors.JWTClaimValidationFailed(
        'unexpected "iss" claim value',
        payload,
        'iss',
        'check_failed',
      );
    }
    for (const claim of ['iat', 'nbf', 'exp'] as const) {
      if (payload[claim] !== undefined && typeof payload[claim] !== 'number') {
        throw new errors.JWTClaimValidationFailed(
          `"${claim}" claim must be a number`,
          payload,
          claim,
          'invalid',
        );
      }
    }
    checkTimes(payload, nowSeconds);
    deepFreeze(payload);
    if (this.#verified.size >= VERIFIED_CACHE_SIZE && !this.#verified.has(cacheKey)) {
      const oldest = this.#verified.keys().next();
      if (!oldest.done) this.#verified.delete(oldest.value);
    }
    this.#verified.set(cacheKey, { token, issuer: options.issuer, typ: options.typ, key, payload });
    return payload;
  }

  /** Creates a new active key; the previous one is retired and stays published until its tokens have expired. */
  async rotate(actor: string): Promise<SigningKeyRecord> {
    const now = this.#clock.nowMs();
    const created = await createKeyRecord(this.#options.algorithm, now);
    const changes: SigningKeyRecord[] = [created];
    const audit: AuditEvent[] = [{ type: 'key_created', atMs: now, actor, detail: { kid: created.kid } }];
    if (this.#active) {
      changes.push({
        ...this.#active.record,
        state: 'retired',
        publishUntilMs: now + this.#options.retiredPublishMs,
      });
      audit.push({
        type: 'key_rotated',
        atMs: now,
        actor,
        detail: { from: this.#active.record.kid, to: created.kid },
      });
    }
    await this.#store.saveSigningKeys(changes, audit);
    await this.reload();
    return created;
  }

  /**
   * Emergency: withdraws a key from the JWKS at once. If it was the active key, a new one replaces it first.
   * Revoking what it signed is the caller's job (a global not-before rule): see `RevocationService`.
   */
  async revokeKey(kid: string, actor: string): Promise<void> {
    const key = this.#keys.get(kid);
    if (!key) throw new RevokdError('REVOKD_NOT_FOUND', `no signing key ${kid}`);
    const now = this.#clock.nowMs();
    const changes: SigningKeyRecord[] = [{ ...key.record, state: 'revoked', publishUntilMs: undefined }];
    const audit: AuditEvent[] = [{ type: 'key_revoked', atMs: now, actor, detail: { kid } }];
    if (key.record.state === 'active') {
      const created = await createKeyRecord(this.#options.algorithm, now);
      changes.push(created);
      audit.push({ type: 'key_created', atMs: now, actor, detail: { kid: created.kid } });
    }
    await this.#store.saveSigningKeys(changes, audit);
    await this.reload();
  }

  #published(): LoadedKey[] {
    return [...this.#keys.values()]
      .filter((k) => this.#isPublished(k))
      .sort((a, b) => Number(b.record.state === 'active') - Number(a.record.state === 'active'));
  }

  #isPublished(key: LoadedKey): boolean {
    const { state, publishUntilMs } = key.record;
    return state === 'active' || (state === 'retired' && (publishUntilMs ?? 0) > this.#clock.nowMs());
  }
}

async function createKeyRecord(alg: SigningAlgorithm, nowMs: number): Promise<SigningKeyRecord> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const decorated = { ...publicJwk, kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg },
    publicJwk: decorated,
    state: 'active',
    createdAtMs: nowMs,
    publishUntilMs: undefined,
  };
}

function loadKey(record: SigningKeyRecord): LoadedKey {
  return {
    record,
    signer: SigningKey.fromJwk(record.privateJwk as JsonWebKey, record.alg),
    verifier: VerificationKey.fromJwk(record.publicJwk as JsonWebKey, record.alg),
  };
}

/** jose's `exp` and `nbf` checks, without clock tolerance: expired at `exp`, valid from `nbf`. */
function checkTimes(payload: JWTPayload, nowSeconds: number): void {
  if (payload.nbf !== undefined && payload.nbf > nowSeconds) {
    throw new errors.JWTClaimValidationFailed(
      '"nbf" claim timestamp check failed',
      payload,
      'nbf',
      'check_failed',
    );
  }
  if (payload.exp !== undefined && payload.exp <= nowSeconds) {
    throw new errors.JWTExpired('"exp" claim timestamp check failed', payload, 'exp', 'check_failed');
  }
}

/** As jose compares `typ`: case-insensitive, `application/` implied when there is no `/` (RFC 7515 §4.1.9). */
function normalizeTyp(value: string): string {
  const normalized = value.toLowerCase();
  return value.includes('/') ? normalized : `application/${normalized}`;
}

/** A verified payload may be handed to several callers: none of them may change it. */
function deepFreeze(value: unknown): void {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
}
