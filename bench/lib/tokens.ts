/**
 * Keys and access tokens for the benchmarks: RFC 9068 JWTs (`typ: at+jwt`) shaped like revokd's, each with its
 * own `jti`, signed with `node:crypto` (signing is set-up, never timed).
 */
import {
  createHmac,
  createSecretKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  randomUUID,
  sign,
} from 'node:crypto';
import type { JWK } from 'jose';

export const BENCH_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'HS256'] as const;
export type BenchAlgorithm = (typeof BENCH_ALGORITHMS)[number];

export const ISSUER = 'https://issuer.test';
export const AUDIENCE = 'https://api.bench.test';

export interface SigningKey {
  readonly alg: BenchAlgorithm;
  readonly kid: string;
  /** The private key, or the HMAC secret. */
  readonly signingKey: KeyObject;
  /** The public key, or the HMAC secret. */
  readonly verificationKey: KeyObject;
  /** The public key as a JWK with `kid`, `alg` and `use` (the secret as an `oct` JWK for HS256). */
  readonly jwk: JWK;
  /** SPKI PEM of the public key, or the raw secret (what fast-jwt takes). */
  readonly fastJwtKey: string | Buffer;
}

export function makeSigningKey(alg: BenchAlgorithm): SigningKey {
  const kid = `bench-${alg.toLowerCase()}`;
  if (alg === 'HS256') {
    const secret = randomBytes(32);
    const key = createSecretKey(secret);
    const jwk = { kty: 'oct', k: secret.toString('base64url'), kid, alg, use: 'sig' };
    return { alg, kid, signingKey: key, verificationKey: key, jwk, fastJwtKey: secret };
  }
  const { privateKey, publicKey } =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    alg,
    kid,
    signingKey: privateKey,
    verificationKey: publicKey,
    jwk: { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg, use: 'sig' },
    fastJwtKey: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

/** `count` valid access tokens, every one distinct (own `jti`, `sid`), issued now and valid for 10 minutes. */
export function mintTokens(key: SigningKey, count: number, nowMs = Date.now()): string[] {
  const header = encode({ alg: key.alg, kid: key.kid, typ: 'at+jwt' });
  const iat = Math.floor(nowMs / 1000);
  const tokens: string[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const payload = encode({
      iss: ISSUER,
      sub: `user-${i % 1000}`,
      aud: AUDIENCE,
      exp: iat + 600,
      iat,
      iat_us: iat * 1_000_000 + (i % 1_000_000),
      jti: randomUUID(),
      client_id: 'bench-client',
      scope: 'read write',
      sid: randomUUID(),
    });
    const input = `${header}.${payload}`;
    tokens[i] = `${input}.${signature(key, Buffer.from(input)).toString('base64url')}`;
  }
  return tokens;
}

function signature(key: SigningKey, data: Buffer): Buffer {
  switch (key.alg) {
    case 'EdDSA':
      return sign(null, data, key.signingKey);
    case 'ES256':
      return sign('sha256', data, { key: key.signingKey, dsaEncoding: 'ieee-p1363' });
    case 'RS256':
      return sign('sha256', data, key.signingKey);
    case 'HS256':
      return createHmac('sha256', key.signingKey).update(data).digest();
  }
}

function encode(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A copy of `text` in a new, flat string: what a server gets from each request's header (no cached hash). */
export function freshCopy(text: string): string {
  return Buffer.from(text, 'latin1').toString('latin1');
}
