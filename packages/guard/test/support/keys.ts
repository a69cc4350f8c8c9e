/** Test keys and tokens, generated with jose. */
import { constants, sign as cryptoSign, KeyObject } from 'node:crypto';
import { base64url, CompactSign, type CryptoKey, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { GuardAlgorithm } from '../../src/verify/key-set.ts';

export const ISSUER = 'https://issuer.test';
export const AUDIENCE = 'https://api.test';
/** 2026-01-01T00:00:00Z, in ms. */
export const NOW_MS = Date.UTC(2026, 0, 1);
export const NOW_S = NOW_MS / 1000;

export interface TestKey {
  readonly alg: GuardAlgorithm;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Public JWK with `kid`, `alg` and `use`. */
  readonly jwk: JWK;
}

export async function makeKey(alg: GuardAlgorithm, kid = `${alg.toLowerCase()}-key`): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, jwk };
}

export function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    sub: 'alice',
    aud: AUDIENCE,
    iat: NOW_S,
    iat_us: NOW_MS * 1000,
    exp: NOW_S + 600,
    jti: 'jti-1',
    client_id: 'app',
    scope: 'read',
    ...overrides,
  };
}

export interface SignOptions {
  /** Header members added to (or, when undefined, removed from) `{ alg, kid, typ: 'at+jwt' }`. */
  readonly header?: Record<string, unknown>;
  /** Raw JSON text of the payload (for values JSON.stringify cannot write, such as 1e400). */
  readonly rawPayload?: string;
  readonly crit?: Record<string, boolean>;
  readonly key?: CryptoKey | Uint8Array;
}

export async function sign(
  key: TestKey,
  payload: Record<string, unknown> = claims(),
  options: SignOptions = {},
): Promise<string> {
  const header: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: 'at+jwt', ...options.header };
  for (const [name, value] of Object.entries(header)) if (value === undefined) delete header[name];
  const bytes = new TextEncoder().encode(options.rawPayload ?? JSON.stringify(payload));
  return new CompactSign(bytes)
    .setProtectedHeader(header as { alg: string })
    .sign(options.key ?? key.privateKey, options.crit ? { crit: options.crit } : undefined);
}

/** A compact JWS with arbitrary segments, none of them signed. */
export function unsigned(header: unknown, payload: unknown, signature = ''): string {
  const enc = (value: unknown) => base64url.encode(typeof value === 'string' ? value : JSON.stringify(value));
  return `${enc(header)}.${enc(payload)}.${signature}`;
}

/** How {@link resign} signs: node:crypto parameters, deliberately outside what RFC 7518 allows when asked. */
export interface RawSignOptions {
  /** ECDSA signature encoding. Default `ieee-p1363` (JWS); `der` is what X.509 uses. */
  readonly dsaEncoding?: 'der' | 'ieee-p1363';
  /** RSASSA-PSS salt length in bytes (PS256 only). Default 32 (RFC 7518 §3.5). */
  readonly saltLength?: number;
  /** Changes the signature bytes after signing (truncate, extend…). */
  readonly mangle?: (signature: Buffer) => Uint8Array;
}

/** Signs `header.payload` of `token` again with node:crypto (the test's choice of parameters), returning the new token. */
export function resign(key: TestKey, token: string, options: RawSignOptions = {}): string {
  const signingInput = token.slice(0, token.lastIndexOf('.'));
  const privateKey = KeyObject.from(key.privateKey);
  const data = Buffer.from(signingInput);
  let signature: Buffer;
  switch (key.alg) {
    case 'EdDSA':
      signature = cryptoSign(null, data, privateKey);
      break;
    case 'ES256':
      signature = cryptoSign('sha256', data, {
        key: privateKey,
        dsaEncoding: options.dsaEncoding ?? 'ieee-p1363',
      });
      break;
    case 'RS256':
      signature = cryptoSign('sha256', data, privateKey);
      break;
    case 'PS256':
      signature = cryptoSign('sha256', data, {
        key: privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: options.saltLength ?? 32,
      });
      break;
  }
  const bytes = options.mangle ? options.mangle(signature) : signature;
  return `${signingInput}.${Buffer.from(bytes).toString('base64url')}`;
}
