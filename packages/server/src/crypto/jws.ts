import { createPrivateKey, type JsonWebKey } from 'node:crypto';
import { createSigner } from 'fast-jwt';
import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import type { SigningAlgorithm } from '../config/schema.ts';

/** The protected header revokd signs with: nothing beyond the algorithm, the key's id and the token type. */
export interface JwsHeader {
  readonly alg: SigningAlgorithm;
  readonly kid: string;
  readonly typ: string;
}

type Signer = (payload: Readonly<Record<string, unknown>>) => string;

/** The latest time claim signed (9999-12-31T23:59:59Z): far beyond any token, and exact through fast-jwt. */
const MAX_NUMERIC_DATE = 253_402_300_799;

/**
 * A private key imported once (Node's own JWK import) and bound to the one JWS algorithm it signs with: EdDSA
 * (Ed25519, RFC 8037), ES256 (P-256), RS256 or PS256. The compact JWS is produced by fast-jwt's synchronous
 * `createSigner`, which signs with `crypto.sign` on a `node:crypto` key — the parameters of RFC 7518 §3 the guard's
 * `VerificationKey` verifies with.
 *
 * Why not jose's `SignJWT`: it signs through WebCrypto, an asynchronous job on libuv's thread pool; measured here
 * ~97 µs per Ed25519 token against ~27 µs for `crypto.sign`, and under load the hop to the pool and back costs the
 * event loop more than the signature itself.
 *
 * fast-jwt takes a PEM, not a `KeyObject`, binds the header when a signer is created, and fills in claims of its own
 * (`iat`, `typ: JWT`); revokd sets every claim and header member itself, so one signer is made per header (and per
 * "payload has its own `iat`"), and time claims that fast-jwt would rewrite or drop are refused up front.
 */
export class SigningKey {
  readonly alg: SigningAlgorithm;
  readonly #pem: string;
  /** Signers by `kid`, `typ` and whether the payload brings its own `iat`: a few per key (one per token type). */
  readonly #signers = new Map<string, Signer>();

  private constructor(alg: SigningAlgorithm, pem: string) {
    this.alg = alg;
    this.#pem = pem;
  }

  /** Imports the private JWK for `alg`; throws a `TypeError` when the key cannot sign with it. */
  static fromJwk(privateJwk: JsonWebKey, alg: SigningAlgorithm): SigningKey {
    const keyObject = createPrivateKey({ key: privateJwk, format: 'jwk' });
    // fast-jwt checks the key's family only (any EC curve passes for ES256, Ed448 for EdDSA): the curve is ours.
    const expected = { EdDSA: 'ed25519', ES256: 'ec', RS256: 'rsa', PS256: 'rsa' }[alg];
    if (keyObject.asymmetricKeyType !== expected) throw new TypeError(`the key cannot sign ${alg}`);
    if (alg === 'ES256' && keyObject.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new TypeError('ES256 requires a P-256 key');
    }
    return new SigningKey(alg, keyObject.export({ format: 'pem', type: 'pkcs8' }) as string);
  }

  /**
   * The compact JWS of `payload` under `header` (whose `alg` must be this key's), both serialised exactly as given.
   * Throws a `TypeError` for a time claim (`iat`, `nbf`, `exp`) that is not a positive whole number of seconds.
   */
  sign(header: JwsHeader, payload: Readonly<Record<string, unknown>>): string {
    if (header.alg !== this.alg) throw new TypeError(`this key signs ${this.alg} only`);
    for (const claim of ['iat', 'nbf', 'exp']) {
      const value = payload[claim];
      if (value !== undefined && !isNumericDate(value)) {
        throw new TypeError(`"${claim}" claim must be a positive whole number of seconds`);
      }
    }
    const ownIat = payload.iat !== undefined;
    const cacheKey = `${ownIat ? 'i' : '-'} ${header.kid} ${header.typ}`;
    let signer = this.#signers.get(cacheKey);
    if (signer === undefined) {
      signer = createSigner({
        key: this.#pem,
        algorithm: this.alg,
        // The documented way to set `typ` (it replaces fast-jwt's `JWT`), and `kid` with it.
        header: { alg: header.alg, kid: header.kid, typ: header.typ },
        // With `noTimestamp` fast-jwt drops a given `iat`; without it, it adds one when there is none.
        noTimestamp: !ownIat,
      }) as Signer;
      this.#signers.set(cacheKey, signer);
    }
    return signer(payload);
  }
}

/**
 * A time claim fast-jwt serialises unchanged: it floors `iat` (`Math.floor(iat * 1000 / 1000)`, exact for whole
 * seconds up to {@link MAX_NUMERIC_DATE}), drops a falsy `nbf`/`exp` and refuses fractional ones.
 */
function isNumericDate(value: unknown): boolean {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) <= MAX_NUMERIC_DATE;
}

/** A compact JWS taken apart, its signature not yet checked. */
export interface CompactJws {
  readonly header: ProtectedHeaderParameters;
  readonly payload: JWTPayload;
  /** The ASCII bytes of `header.payload` (RFC 7515 §5.2). */
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

/**
 * Splits a compact JWT (RFC 7519 §7.2) into its decoded parts: header and payload are decoded by jose (JSON
 * objects, strict UTF-8), the signature by Node's base64url decoder and must be canonical, so that one signature
 * has one spelling. Throws jose's `JWTInvalid`/`JWSInvalid` (or a `TypeError` for the header) when malformed.
 */
export function parseCompactJws(token: string): CompactJws {
  const payload = decodeJwt(token);
  const header = decodeProtectedHeader(token);
  const secondDot = token.lastIndexOf('.');
  const encoded = token.slice(secondDot + 1);
  const signature = Buffer.from(encoded, 'base64url');
  if (encoded.length === 0 || signature.toString('base64url') !== encoded) {
    throw new errors.JWSInvalid('the signature is not canonical base64url');
  }
  return { header, payload, signingInput: Buffer.from(token.slice(0, secondDot), 'latin1'), signature };
}
