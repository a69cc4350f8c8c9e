import { type CryptoKey, importJWK, type JWK } from 'jose';
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

/** Keys per `kid`, each imported once per algorithm it may verify. */
export interface KeyResolver {
  /** The keys published under `kid`, by algorithm; `undefined` when the kid is unknown. */
  lookup(kid: string): ReadonlyMap<string, CryptoKey> | undefined;
}

/** The most keys a set may hold; a larger JWKS is cut here (keys after the limit are ignored). */
export const MAX_KEYS = 100;

/**
 * An immutable set of verification keys imported from a JWKS (RFC 7517). Keys are imported once, as
 * `CryptoKey`s bound to one algorithm, so verification never parses a JWK again.
 *
 * Only public signature keys with a `kid` are kept: symmetric keys, keys whose `use` is not `sig` or whose
 * `key_ops` exclude `verify`, and keys for algorithms outside the allowlist are skipped. Private members of a
 * JWK are never imported. A key with an `alg` is usable with that algorithm only; an RSA key without `alg`
 * is usable with RS256 and PS256 (when both are allowed).
 */
export class KeySet implements KeyResolver {
  static readonly EMPTY = new KeySet(new Map());

  readonly #keys: ReadonlyMap<string, ReadonlyMap<string, CryptoKey>>;

  private constructor(keys: ReadonlyMap<string, ReadonlyMap<string, CryptoKey>>) {
    this.#keys = keys;
  }

  /** Imports the usable keys of a JWKS document. Throws a `TypeError` when `jwks` is not a JWKS at all. */
  static async fromJwks(jwks: unknown, algorithms: readonly GuardAlgorithm[]): Promise<KeySet> {
    if (typeof jwks !== 'object' || jwks === null || !Array.isArray((jwks as { keys?: unknown }).keys)) {
      throw new TypeError('not a JWK set: expected an object with a "keys" array');
    }
    const keys = new Map<string, Map<string, CryptoKey>>();
    for (const jwk of ((jwks as { keys: unknown[] }).keys as unknown[]).slice(0, MAX_KEYS)) {
      const usable = usableKey(jwk, algorithms);
      if (!usable) continue;
      let byAlg = keys.get(usable.kid);
      for (const alg of usable.algs) {
        if (byAlg?.has(alg)) continue;
        let key: CryptoKey;
        try {
          key = (await importJWK(usable.publicJwk, alg)) as CryptoKey;
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

  lookup(kid: string): ReadonlyMap<string, CryptoKey> | undefined {
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
  readonly publicJwk: JWK;
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
function publicMembers(jwk: Record<string, unknown>): JWK | undefined {
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
