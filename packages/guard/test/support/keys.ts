/** Test keys and tokens, generated with jose. */
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
