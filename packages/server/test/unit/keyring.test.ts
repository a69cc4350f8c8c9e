import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CompactSign,
  decodeProtectedHeader,
  errors,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
} from 'jose';
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from '../../src/config/schema.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { isRevokdError } from '../../src/core/errors.ts';
import { Keyring } from '../../src/crypto/keyring.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

const ISSUER = 'https://revokd.test';
const TYP = 'at+jwt';

async function keyring(algorithm: SigningAlgorithm = 'EdDSA') {
  const clock = new ManualClock();
  const store = SqliteStore.open({ path: ':memory:' });
  const ring = new Keyring(store, clock, { algorithm, retiredPublishMs: 60_000 });
  await ring.init();
  const nowSeconds = Math.floor(clock.nowMs() / 1000);
  const claims = {
    iss: ISSUER,
    sub: 'alice',
    aud: 'https://api.example.com',
    iat: nowSeconds,
    exp: nowSeconds + 300,
  };
  return {
    clock,
    store,
    ring,
    claims,
    verify: (token: string) => ring.verify(token, { issuer: ISSUER, typ: TYP }),
  };
}

/** Replaces one segment of a compact JWS with the base64url of `json`. */
function withSegment(token: string, index: 0 | 1, json: unknown): string {
  const parts = token.split('.');
  parts[index] = Buffer.from(JSON.stringify(json)).toString('base64url');
  return parts.join('.');
}

describe('Keyring signing (node:crypto, synchronous)', () => {
  for (const algorithm of SIGNING_ALGORITHMS) {
    test(`${algorithm}: jose verifies what the keyring signs, and the keyring verifies it too`, async (t) => {
      const { store, ring, claims, clock, verify } = await keyring(algorithm);
      t.after(() => store.close());
      const token = await ring.sign({ ...claims, jti: 'j1' }, TYP);
      const jwk = ring.jwks.keys[0]!;
      const { payload, protectedHeader } = await jwtVerify(token, await importJWK(jwk as JWK, algorithm), {
        issuer: ISSUER,
        typ: TYP,
        algorithms: [algorithm],
        currentDate: new Date(clock.nowMs()),
      });
      assert.deepEqual(protectedHeader, { alg: algorithm, kid: jwk.kid, typ: TYP });
      assert.deepEqual(payload, { ...claims, jti: 'j1' });
      assert.deepEqual(await verify(token), payload);
    });
  }

  test('header and payload come out exactly as given: nothing added, nothing rewritten', async (t) => {
    const { store, ring, claims } = await keyring();
    t.after(() => store.close());
    const { iat: _iat, ...withoutIat } = claims;
    const given = { ...withoutIat, nested: { a: [1, 'é', null] }, scope: 'read write' };
    const token = await ring.sign(given, 'logout+jwt');
    assert.deepEqual(decodeProtectedHeader(token), { alg: 'EdDSA', kid: ring.activeKid, typ: 'logout+jwt' });
    assert.equal(Buffer.from(token.split('.')[1]!, 'base64url').toString(), JSON.stringify(given));
    const withIat = await ring.sign(claims, TYP);
    assert.equal(Buffer.from(withIat.split('.')[1]!, 'base64url').toString(), JSON.stringify(claims));
  });

  test('a time claim that is not a positive whole number of seconds is refused', async (t) => {
    const { store, ring, claims } = await keyring();
    t.after(() => store.close());
    const bads: Array<Record<string, unknown>> = [
      { exp: Number.POSITIVE_INFINITY },
      { exp: 0 },
      { nbf: claims.iat + 0.5 },
      { iat: claims.iat + 0.5 },
      { iat: 'yesterday' },
      { iat: null },
    ];
    for (const bad of bads) {
      await assert.rejects(
        ring.sign({ ...claims, ...bad } as JWTPayload, TYP),
        TypeError,
        JSON.stringify(bad),
      );
    }
  });
});

describe('Keyring verification', () => {
  test('refuses tampered, foreign, mistyped, extended and unsigned tokens with jose’s errors', async (t) => {
    const { store, ring, claims, verify } = await keyring();
    t.after(() => store.close());
    const token = await ring.sign(claims, TYP);
    const [header] = token.split('.');
    const headerJson = JSON.parse(Buffer.from(header!, 'base64url').toString());
    const cases: Array<[string, string, (error: unknown) => boolean]> = [
      [
        'payload changed',
        withSegment(token, 1, { ...claims, sub: 'mallory' }),
        (e) => e instanceof errors.JWSSignatureVerificationFailed,
      ],
      [
        'another issuer',
        await ring.sign({ ...claims, iss: 'https://evil.example' }, TYP),
        (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'iss',
      ],
      [
        'no issuer',
        await ring.sign({ ...claims, iss: undefined }, TYP),
        (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'iss',
      ],
      [
        'typ JWT',
        await ring.sign(claims, 'JWT'),
        (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'typ',
      ],
      [
        'a crit extension',
        withSegment(token, 0, { ...headerJson, crit: ['exp'] }),
        (e) => e instanceof errors.JOSENotSupported,
      ],
      [
        'alg none',
        `${withSegment(token, 0, { ...headerJson, alg: 'none' })
          .split('.')
          .slice(0, 2)
          .join('.')}.`,
        (e) => e instanceof errors.JWSInvalid || e instanceof errors.JOSEAlgNotAllowed,
      ],
      [
        'HS256 (algorithm confusion)',
        withSegment(token, 0, { ...headerJson, alg: 'HS256' }),
        (e) => e instanceof errors.JOSEAlgNotAllowed,
      ],
      [
        'an unknown kid',
        withSegment(token, 0, { ...headerJson, kid: 'nope' }),
        (e) => isRevokdError(e) && e.code === 'REVOKD_NOT_FOUND',
      ],
      [
        'a non-numeric iat (signed with our key, though not by the keyring, which refuses to)',
        await new CompactSign(Buffer.from(JSON.stringify({ ...claims, iat: 'yesterday' })))
          .setProtectedHeader(headerJson)
          .sign(await importJWK((await store.listSigningKeys())[0]!.privateJwk as JWK, 'EdDSA')),
        (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'iat',
      ],
      ['two segments', token.split('.').slice(0, 2).join('.'), (e) => e instanceof errors.JWTInvalid],
      [
        'a non-canonical signature',
        `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}=`,
        (e) => e instanceof errors.JWSInvalid,
      ],
    ];
    for (const [name, bad, expected] of cases) {
      await assert.rejects(verify(bad), expected, name);
    }
  });

  test('time claims are checked on every use, a remembered token included', async (t) => {
    const { store, ring, claims, clock, verify } = await keyring();
    t.after(() => store.close());
    const token = await ring.sign(claims, TYP);
    await verify(token);
    clock.advance(299_000);
    await verify(token);
    clock.advance(1_000);
    await assert.rejects(verify(token), errors.JWTExpired);

    const later = await ring.sign({ ...claims, nbf: claims.iat + 3600, exp: claims.iat + 7200 }, TYP);
    await assert.rejects(
      verify(later),
      (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'nbf',
    );
  });

  test('a remembered token is refused as soon as its key is withdrawn or stops being published', async (t) => {
    const { store, ring, claims, clock, verify } = await keyring();
    t.after(() => store.close());
    const first = await ring.sign(claims, TYP);
    await verify(first);
    await ring.rotate('test'); // the first key is retired: still published for 60 s
    await verify(first);
    clock.advance(60_000);
    await assert.rejects(verify(first), (e) => isRevokdError(e) && e.code === 'REVOKD_NOT_FOUND');

    const second = await ring.sign({ ...claims, iat: claims.iat + 60, exp: claims.iat + 360 }, TYP);
    await verify(second);
    await ring.revokeKey(ring.activeKid!, 'test'); // compromise: unpublished at once
    await assert.rejects(verify(second), (e) => isRevokdError(e) && e.code === 'REVOKD_NOT_FOUND');
  });

  test('the payload handed out is frozen: a caller cannot change what the next one sees', async (t) => {
    const { store, ring, claims, verify } = await keyring();
    t.after(() => store.close());
    const token = await ring.sign({ ...claims, aud: ['a', 'b'] }, TYP);
    const payload = await verify(token);
    assert.ok(Object.isFrozen(payload));
    assert.ok(Object.isFrozen(payload.aud));
    assert.deepEqual((await verify(token)).aud, ['a', 'b']);
  });
});
