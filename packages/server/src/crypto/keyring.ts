import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from 'jose';
import type { SigningAlgorithm } from '../config/schema.ts';
import { SIGNING_ALGORITHMS } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { RevokdError } from '../core/errors.ts';
import type { AuditEvent, SigningKeyRecord, Store } from '../store/port.ts';

type SigningKey = Awaited<ReturnType<typeof importJWK>>;

interface LoadedKey {
  readonly record: SigningKeyRecord;
  readonly privateKey: SigningKey;
  readonly publicKey: SigningKey;
}

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

  constructor(store: Store, clock: Clock, options: KeyringOptions) {
    this.#store = store;
    this.#clock = clock;
    this.#options = options;
  }

  /** Loads the keys, creating the first one when the store has none. */
  async init(actor = 'system'): Promise<void> {
    await this.reload();
    if (!this.#active) {
      await this.rotate(actor);
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
          : await loadKey(record),
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

  /** Signs a JWT with the active key, with the given `typ` header. */
  async sign(payload: JWTPayload, typ: string): Promise<string> {
    const active = this.#active;
    if (!active) throw new RevokdError('REVOKD_NO_SIGNING_KEY', 'no active signing key');
    return new SignJWT(payload)
      .setProtectedHeader({ alg: active.record.alg, kid: active.record.kid, typ })
      .sign(active.privateKey);
  }

  /**
   * Verifies a JWT signed by one of our published keys, with our issuer and the given `typ`. Only algorithms
   * revokd signs with are accepted, and only a key whose own `alg` matches the header: no algorithm confusion.
   * Throws jose's errors (with stable `code`s) on failure.
   */
  async verify(
    token: string,
    options: { issuer: string; typ: string; currentDate?: Date },
  ): Promise<JWTPayload> {
    const { payload } = await jwtVerify(
      token,
      (header) => {
        const key = header.kid === undefined ? undefined : this.#keys.get(header.kid);
        if (!key || !this.#isPublished(key) || key.record.alg !== header.alg) {
          throw new RevokdError('REVOKD_NOT_FOUND', 'no matching published key');
        }
        return key.publicKey;
      },
      {
        issuer: options.issuer,
        typ: options.typ,
        algorithms: [...SIGNING_ALGORITHMS],
        // Time comes from the runtime's clock, like every other time decision (exp, nbf, rule expiry).
        currentDate: options.currentDate ?? new Date(this.#clock.nowMs()),
      },
    );
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

async function loadKey(record: SigningKeyRecord): Promise<LoadedKey> {
  return {
    record,
    privateKey: await importJWK(record.privateJwk as JWK, record.alg),
    publicKey: await importJWK(record.publicJwk as JWK, record.alg),
  };
}
