import {
  constants,
  createPublicKey,
  verify as cryptoVerify,
  type JsonWebKey,
  type KeyObject,
  type VerifyKeyObjectInput,
} from 'node:crypto';
import { GuardError } from '../errors.ts';

/**
 * Signature algorithms a guard may accept. Asymmetric only: a guard holds public keys, so an HMAC algorithm
 * could only ever be "verified" with a public key as the secret (algorithm confusion, RFC 8725 §2.1).
 */
export const GUARD_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'PS256'] as const;
export type GuardAlgorithm = (typeof GUARD_ALGORITHMS)[number];

/** Validates an `algorithms` option (a non-empty subset of {@link GUARD_ALGORITHMS}; default: all of them). */
export function algorithmSet(algorithms: readonly string[] = GUARD_ALGORITHMS): ReadonlySet<string> {
  if (
    algorithms.length === 0 ||
    algorithms.some((a) => !(GUARD_ALGORITHMS as readonly string[]).includes(a))
  ) {
    throw new GuardError(
      'REVOKD_GUARD_CONFIG',
      `algorithms must be a non-empty subset of ${GUARD_ALGORITHMS.join(', ')}`,
    );
  }
  return new Set(algorithms);
}

/**
 * A public key imported once (Node's own JWK import, `crypto.createPublicKey`) and bound to the one JWS algorithm
 * it may verify. Verification is synchronous `crypto.verify` on the key's `KeyObject`, with the parameters of
 * RFC 7518 §3: EdDSA (Ed25519, RFC 8037), ES256 (P-256, the 64-byte `r || s` encoding: a DER signature is refused),
 * RS256 (RSASSA-PKCS1-v1_5 with SHA-256) and PS256 (RSASSA-PSS with SHA-256, MGF1 with SHA-256, and a salt of
 * exactly 32 bytes, the hash length, §3.5). RSA keys shorter than 2048 bits are refused (§3.3, §3.5).
 */
export class VerificationKey {
  /** The one algorithm this key verifies. */
  readonly alg: GuardAlgorithm;
  /** The imported public key. */
  readonly keyObject: KeyObject;
  /** The length every valid signature of this key has, in bytes. */
  readonly signatureBytes: number;
  readonly #digest: string | null;
  readonly #input: KeyObject | VerifyKeyObjectInput;

  private constructor(alg: GuardAlgorithm, keyObject: KeyObject, signatureBytes: number) {
    this.alg = alg;
    this.keyObject = keyObject;
    this.signatureBytes = signatureBytes;
    switch (alg) {
      case 'EdDSA':
        this.#digest = null;
        this.#input = keyObject;
        break;
      case 'ES256':
        this.#digest = 'sha256';
        this.#input = { key: keyObject, dsaEncoding: 'ieee-p1363' };
        break;
      case 'RS256':
        this.#digest = 'sha256';
        this.#input = { key: keyObject, padding: constants.RSA_PKCS1_PADDING };
        break;
      case 'PS256':
        this.#digest = 'sha256';
        this.#input = {
          key: keyObject,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: PS256_SALT_BYTES,
        };
        break;
    }
    Object.freeze(this);
  }

  /**
   * Imports the public members of a JWK for `alg`. Throws a `TypeError` when the key cannot verify `alg`
   * (another key type or curve, an RSA modulus under 2048 bits, or key material Node refuses).
   */
  static fromJwk(jwk: JsonWebKey, alg: GuardAlgorithm): VerificationKey {
    const keyObject = createPublicKey({ key: jwk, format: 'jwk' });
    const details = keyObject.asymmetricKeyDetails ?? {};
    switch (alg) {
      case 'EdDSA':
        if (keyObject.asymmetricKeyType !== 'ed25519') break;
        return new VerificationKey(alg, keyObject, 64);
      case 'ES256':
        if (keyObject.asymmetricKeyType !== 'ec' || details.namedCurve !== 'prime256v1') break;
        return new VerificationKey(alg, keyObject, 64);
      case 'RS256':
      case 'PS256': {
        const bits = details.modulusLength;
        if (keyObject.asymmetricKeyType !== 'rsa' || bits === undefined) break;
        if (bits < MIN_RSA_BITS)
          throw new TypeError(`${alg} requires an RSA key of at least ${MIN_RSA_BITS} bits`);
        return new VerificationKey(alg, keyObject, Math.ceil(bits / 8));
      }
    }
    throw new TypeError(`the key cannot verify ${alg}`);
  }

  /**
   * Whether `signature` is this key's signature of `data` under its algorithm. Synchronous; never throws.
   * A signature of the wrong length is refused before any cryptography.
   */
  verify(data: Uint8Array, signature: Uint8Array): boolean {
    if (signature.length !== this.signatureBytes) return false;
    try {
      return cryptoVerify(this.#digest, data, this.#input, signature);
    } catch {
      return false;
    }
  }
}

/** RFC 7518 §3.5: the PSS salt is as long as the hash output (32 bytes for SHA-256). */
const PS256_SALT_BYTES = 32;
/** RFC 7518 §3.3, §3.5: a key of size 2048 bits or larger must be used. */
const MIN_RSA_BITS = 2048;

/** Keys per `kid`, each imported once per algorithm it may verify. */
export interface KeyResolver {
  /** The keys published under `kid`, by algorithm; `undefined` when the kid is unknown. */
  lookup(kid: string): ReadonlyMap<string, VerificationKey> | undefined;
}

/** The most keys a set may hold; a larger JWKS is cut here (keys after the limit are ignored). */
export const MAX_KEYS = 100;

/**
 * An immutable set of verification keys imported from a JWKS (RFC 7517). Keys are imported once, as
 * {@link VerificationKey}s (a `node:crypto` `KeyObject` bound to one algorithm), so verification never parses a
 * JWK again and runs synchronously.
 *
 * Only public signature keys with a `kid` are kept: symmetric keys, keys whose `use` is not `sig` or whose
 * `key_ops` exclude `verify`, and keys for algorithms outside the allowlist are skipped. Private members of a
 * JWK are never imported. A key with an `alg` is usable with that algorithm only; an RSA key without `alg`
 * is usable with RS256 and PS256 (when both are allowed).
 */
export class KeySet implements KeyResolver {
  static readonly EMPTY = new KeySet(new Map());

  readonly #keys: ReadonlyMap<string, ReadonlyMap<string, VerificationKey>>;

  private constructor(keys: ReadonlyMap<string, ReadonlyMap<string, VerificationKey>>) {
    this.#keys = keys;
  }

  /**
   * Imports the usable keys of a JWKS document (the import itself is synchronous). Rejects with a `TypeError`
   * when `jwks` is not a JWKS at all.
   */
  static async fromJwks(jwks: unknown, algorithms: readonly GuardAlgorithm[]): Promise<KeySet> {
    if (typeof jwks !== 'object' || jwks === null || !Array.isArray((jwks as { keys?: unknown }).keys)) {
      throw new TypeError('not a JWK set: expected an object with a "keys" array');
    }
    const keys = new Map<string, Map<string, VerificationKey>>();
    for (const jwk of ((jwks as { keys: unknown[] }).keys as unknown[]).slice(0, MAX_KEYS)) {
      const usable = usableKey(jwk, algorithms);
      if (!usable) continue;
      let byAlg = keys.get(usable.kid);
      for (const alg of usable.algs) {
        if (byAlg?.has(alg)) continue;
        let key: VerificationKey;
        try {
          key = VerificationKey.fromJwk(usable.publicJwk, alg);
        } catch {
          continue;
        }
        if (!byAlg) {
          byAlg = new Map();
          keys.set(usable.kid, byAlg);
        }
        byAlg.set(alg, key);
      }
    }
    return new KeySet(keys);
  }

  lookup(kid: string): ReadonlyMap<string, VerificationKey> | undefined {
    return this.#keys.get(kid);
  }

  get kids(): string[] {
    return [...this.#keys.keys()];
  }

  get size(): number {
    return this.#keys.size;
  }
}

interface UsableKey {
  readonly kid: string;
  readonly algs: readonly GuardAlgorithm[];
  readonly publicJwk: JsonWebKey;
}

function usableKey(value: unknown, allowed: readonly GuardAlgorithm[]): UsableKey | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const jwk = value as Record<string, unknown>;
  if (typeof jwk.kid !== 'string' || jwk.kid.length === 0) return undefined;
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined;
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) {
    return undefined;
  }
  const candidates = algorithmsFor(jwk);
  const algs =
    jwk.alg === undefined
      ? candidates.filter((a) => allowed.includes(a))
      : candidates.filter((a) => a === jwk.alg && allowed.includes(a));
  if (algs.length === 0) return undefined;
  const publicJwk = publicMembers(jwk);
  return publicJwk ? { kid: jwk.kid, algs, publicJwk } : undefined;
}

/** The algorithms a key type can verify. */
function algorithmsFor(jwk: Record<string, unknown>): readonly GuardAlgorithm[] {
  switch (jwk.kty) {
    case 'OKP':
      return jwk.crv === 'Ed25519' ? ['EdDSA'] : [];
    case 'EC':
      return jwk.crv === 'P-256' ? ['ES256'] : [];
    case 'RSA':
      return ['RS256', 'PS256'];
    default:
      return [];
  }
}

/** A copy with the public members only, so a private key published by mistake is never imported as such. */
function publicMembers(jwk: Record<string, unknown>): JsonWebKey | undefined {
  const str = (v: unknown) => typeof v === 'string' && v.length > 0;
  switch (jwk.kty) {
    case 'OKP':
      return str(jwk.x) ? { kty: 'OKP', crv: jwk.crv as string, x: jwk.x as string } : undefined;
    case 'EC':
      return str(jwk.x) && str(jwk.y)
        ? { kty: 'EC', crv: jwk.crv as string, x: jwk.x as string, y: jwk.y as string }
        : undefined;
    case 'RSA':
      return str(jwk.n) && str(jwk.e) ? { kty: 'RSA', n: jwk.n as string, e: jwk.e as string } : undefined;
    default:
      return undefined;
  }
}
