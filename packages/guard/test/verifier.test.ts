import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { base64url, exportSPKI } from 'jose';
import { GuardError } from '../src/errors.ts';
import { KeySet } from '../src/verify/key-set.ts';
import {
  AccessTokenVerifier,
  type VerifierOptions,
  type VerifyDecision,
  type VerifyFailureReason,
} from '../src/verify/verifier.ts';
import { AUDIENCE, claims, ISSUER, makeKey, NOW_MS, NOW_S, resign, sign, unsigned } from './support/keys.ts';

const eddsa = await makeKey('EdDSA');
const es256 = await makeKey('ES256');
const rs256 = await makeKey('RS256');
const ps256 = await makeKey('PS256');
/** Not published: the attacker's key. */
const attacker = await makeKey('ES256', 'attacker');
/** Same kid as the published ES256 key, different key material. */
const impostor = { ...(await makeKey('ES256')), kid: es256.kid };
const keys = await KeySet.fromJwks({ keys: [eddsa.jwk, es256.jwk, rs256.jwk, ps256.jwk] }, [
  'EdDSA',
  'ES256',
  'RS256',
  'PS256',
]);

function verifier(options: Partial<VerifierOptions> = {}): AccessTokenVerifier {
  return new AccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, keys, cacheSize: 0, ...options });
}

async function verify(token: string, options: Partial<VerifierOptions> = {}, nowMs = NOW_MS) {
  return verifier(options).verify(token, nowMs);
}

function reasonOf(decision: VerifyDecision): VerifyFailureReason | 'ok' {
  return decision.ok ? 'ok' : decision.reason;
}

describe('AccessTokenVerifier accepts', () => {
  for (const key of [eddsa, es256, rs256, ps256]) {
    test(`a valid ${key.alg} access token, with its claims and revocation facts`, async () => {
      const decision = await verify(await sign(key));
      assert.ok(decision.ok);
      assert.equal(decision.claims.sub, 'alice');
      assert.equal(decision.facts.jti, 'jti-1');
      assert.equal(decision.facts.exactIssuedAt, true);
      assert.equal(decision.facts.issuedAtUs, NOW_MS * 1000);
    });
  }

  test('typ application/at+jwt in any case (RFC 9068 §4)', async () => {
    for (const typ of ['application/at+jwt', 'AT+JWT', 'Application/At+Jwt']) {
      assert.equal(reasonOf(await verify(await sign(es256, claims(), { header: { typ } }))), 'ok', typ);
    }
  });

  test('an aud array naming this resource server, and one of several configured audiences', async () => {
    assert.equal(
      reasonOf(await verify(await sign(es256, claims({ aud: ['https://other', AUDIENCE] })))),
      'ok',
    );
    const token = await sign(es256, claims({ aud: 'https://second.test' }));
    assert.equal(reasonOf(await verify(token, { audience: [AUDIENCE, 'https://second.test'] })), 'ok');
  });

  test('exp and nbf within the clock skew', async () => {
    const token = await sign(es256, claims({ exp: NOW_S - 10, nbf: NOW_S + 10, iat: NOW_S - 100 }));
    assert.equal(reasonOf(await verify(token, { clockSkewSeconds: 30 })), 'ok');
    assert.equal(reasonOf(await verify(token, { clockSkewSeconds: 0 })), 'expired');
  });

  test('signatures made by node:crypto with the RFC 7518 parameters (PS256 with a 32-byte salt)', async () => {
    for (const key of [eddsa, es256, rs256, ps256]) {
      assert.equal(reasonOf(await verify(resign(key, await sign(key)))), 'ok', key.alg);
    }
  });

  test('a lifetime of exactly the maximum', async () => {
    const token = await sign(es256, claims({ exp: NOW_S + 3600 }));
    assert.equal(reasonOf(await verify(token, { maxTokenLifetimeSeconds: 3600 })), 'ok');
  });
});

/** One row per attack or defect, with the exact reason expected. */
const hostile: Array<{ name: string; token: () => Promise<string> | string; reason: VerifyFailureReason }> = [
  {
    name: 'alg none, empty signature',
    reason: 'alg_not_allowed',
    token: () => unsigned({ alg: 'none', typ: 'at+jwt', kid: es256.kid }, claims()),
  },
  {
    name: 'alg none with a signature segment',
    reason: 'alg_not_allowed',
    token: () => unsigned({ alg: 'none', typ: 'at+jwt', kid: es256.kid }, claims(), 'c2ln'),
  },
  {
    name: 'alg NONE',
    reason: 'alg_not_allowed',
    token: () => unsigned({ alg: 'NONE', typ: 'at+jwt', kid: es256.kid }, claims()),
  },
  {
    name: 'HS256 signed with the published public key (algorithm confusion)',
    reason: 'alg_not_allowed',
    token: async () =>
      sign(rs256, claims(), {
        header: { alg: 'HS256' },
        key: new TextEncoder().encode(await exportSPKI(rs256.publicKey)),
      }),
  },
  {
    name: 'HS256 signed with the public JWK JSON as secret',
    reason: 'alg_not_allowed',
    token: () =>
      sign(es256, claims(), {
        header: { alg: 'HS256' },
        key: new TextEncoder().encode(JSON.stringify(es256.jwk)),
      }),
  },
  {
    name: 'missing alg',
    reason: 'alg_not_allowed',
    token: () => unsigned({ typ: 'at+jwt', kid: es256.kid }, claims(), 'c2ln'),
  },
  {
    name: 'alg ES384 (not allowed)',
    reason: 'alg_not_allowed',
    token: () => unsigned({ alg: 'ES384', typ: 'at+jwt', kid: es256.kid }, claims(), 'c2ln'),
  },
  { name: 'unknown kid', reason: 'kid_unknown', token: () => sign(attacker) },
  {
    name: 'no kid',
    reason: 'kid_missing',
    token: () => sign(es256, claims(), { header: { kid: undefined } }),
  },
  { name: 'empty kid', reason: 'kid_missing', token: () => sign(es256, claims(), { header: { kid: '' } }) },
  { name: 'numeric kid', reason: 'kid_missing', token: () => sign(es256, claims(), { header: { kid: 7 } }) },
  {
    name: 'ES256 key named for an RS256 token (key/alg mismatch)',
    reason: 'key_mismatch',
    token: () => sign(rs256, claims(), { header: { kid: es256.kid } }),
  },
  {
    name: 'embedded jwk header with the attacker key (never used)',
    reason: 'kid_unknown',
    token: () => sign(attacker, claims(), { header: { jwk: attacker.jwk } }),
  },
  {
    name: 'jku, x5u, jwk and x5c headers with a published kid, signed by the attacker',
    reason: 'signature_invalid',
    token: () =>
      sign(attacker, claims(), {
        header: {
          kid: es256.kid,
          jku: 'http://127.0.0.1:9/jwks.json',
          x5u: 'http://127.0.0.1:9/cert.pem',
          jwk: attacker.jwk,
          x5c: ['MIIBkTCB+wIJAKHHIG...'],
        },
      }),
  },
  { name: 'same kid, other key (impostor)', reason: 'signature_invalid', token: () => sign(impostor) },
  {
    name: 'tampered payload',
    reason: 'signature_invalid',
    token: async () => {
      const [h, , s] = (await sign(es256)).split('.');
      return `${h}.${base64url.encode(JSON.stringify(claims({ sub: 'admin' })))}.${s}`;
    },
  },
  {
    name: 'empty signature with a real alg',
    reason: 'signature_invalid',
    token: async () => `${(await sign(es256)).split('.').slice(0, 2).join('.')}.`,
  },
  {
    name: 'PS256 with a 64-byte salt (RFC 7518 §3.5: the salt is the hash length)',
    reason: 'signature_invalid',
    token: async () => resign(ps256, await sign(ps256), { saltLength: 64 }),
  },
  {
    name: 'PS256 with an empty salt',
    reason: 'signature_invalid',
    token: async () => resign(ps256, await sign(ps256), { saltLength: 0 }),
  },
  {
    name: 'ES256 with a DER-encoded signature',
    reason: 'signature_invalid',
    token: async () => resign(es256, await sign(es256), { dsaEncoding: 'der' }),
  },
  {
    name: 'ES256 signature one byte short',
    reason: 'signature_invalid',
    token: async () => resign(es256, await sign(es256), { mangle: (sig) => sig.subarray(1) }),
  },
  {
    name: 'ES256 signature with a zero byte prepended',
    reason: 'signature_invalid',
    token: async () =>
      resign(es256, await sign(es256), { mangle: (sig) => Buffer.concat([Buffer.alloc(1), sig]) }),
  },
  {
    name: 'ES256 signature twice over',
    reason: 'signature_invalid',
    token: async () => resign(es256, await sign(es256), { mangle: (sig) => Buffer.concat([sig, sig]) }),
  },
  {
    name: 'EdDSA signature with a byte appended',
    reason: 'signature_invalid',
    token: async () =>
      resign(eddsa, await sign(eddsa), { mangle: (sig) => Buffer.concat([sig, Buffer.alloc(1)]) }),
  },
  {
    name: 'RS256 signature with a zero byte prepended (257 bytes for a 2048-bit key)',
    reason: 'signature_invalid',
    token: async () =>
      resign(rs256, await sign(rs256), { mangle: (sig) => Buffer.concat([Buffer.alloc(1), sig]) }),
  },
  {
    name: 'PS256 signature one byte short',
    reason: 'signature_invalid',
    token: async () => resign(ps256, await sign(ps256), { mangle: (sig) => sig.subarray(1) }),
  },
  {
    name: 'signature segment of impossible length (1 mod 4)',
    reason: 'malformed',
    token: async () => `${await sign(es256)}AAA`,
  },
  {
    name: 'signature segment with non-zero trailing bits (non-canonical base64url)',
    reason: 'malformed',
    token: async () => {
      const token = await sign(es256);
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      // 64 bytes are 86 characters: the last one carries 2 bits of signature and 4 zero bits.
      return token.slice(0, -1) + alphabet[alphabet.indexOf(token.at(-1)!) | 1];
    },
  },
  {
    name: 'unknown crit extension',
    reason: 'crit_unsupported',
    token: () => sign(es256, claims(), { header: { crit: ['urn:x'], 'urn:x': 1 }, crit: { 'urn:x': true } }),
  },
  {
    name: 'crit b64=false (unencoded payload)',
    reason: 'crit_unsupported',
    token: () =>
      unsigned({ alg: 'ES256', typ: 'at+jwt', kid: es256.kid, crit: ['b64'], b64: false }, claims(), 'c2ln'),
  },
  {
    name: 'foreign issuer',
    reason: 'iss_invalid',
    token: () => sign(es256, claims({ iss: 'https://evil.test' })),
  },
  {
    name: 'issuer with trailing slash',
    reason: 'iss_invalid',
    token: () => sign(es256, claims({ iss: `${ISSUER}/` })),
  },
  {
    name: 'foreign audience',
    reason: 'aud_invalid',
    token: () => sign(es256, claims({ aud: 'https://other.test' })),
  },
  { name: 'empty aud array', reason: 'aud_invalid', token: () => sign(es256, claims({ aud: [] })) },
  {
    name: 'aud array with a number',
    reason: 'claim_invalid',
    token: () => sign(es256, claims({ aud: [AUDIENCE, 1] })),
  },
  { name: 'typ JWT', reason: 'typ_invalid', token: () => sign(es256, claims(), { header: { typ: 'JWT' } }) },
  {
    name: 'no typ',
    reason: 'typ_invalid',
    token: () => sign(es256, claims(), { header: { typ: undefined } }),
  },
  {
    name: 'typ logout+jwt',
    reason: 'typ_invalid',
    token: () => sign(es256, claims(), { header: { typ: 'logout+jwt' } }),
  },
  {
    name: 'expired',
    reason: 'expired',
    token: () => sign(es256, claims({ iat: NOW_S - 700, exp: NOW_S - 60 })),
  },
  {
    name: 'nbf in the future',
    reason: 'not_yet_valid',
    token: () => sign(es256, claims({ nbf: NOW_S + 120 })),
  },
  {
    name: 'issued in the future',
    reason: 'iat_in_future',
    token: () => sign(es256, claims({ iat: NOW_S + 120, exp: NOW_S + 700 })),
  },
  {
    name: 'lifetime over the maximum',
    reason: 'lifetime_exceeded',
    token: () => sign(es256, claims({ exp: NOW_S + 3601 })),
  },
  { name: 'huge exp', reason: 'lifetime_exceeded', token: () => sign(es256, claims({ exp: 1e15 })) },
  {
    name: 'exp 1e400 (Infinity)',
    reason: 'claim_invalid',
    token: () =>
      sign(es256, {}, { rawPayload: JSON.stringify(claims()).replace(/"exp":\d+/, '"exp":1e400') }),
  },
  { name: 'exp "NaN"', reason: 'claim_invalid', token: () => sign(es256, claims({ exp: 'NaN' })) },
  { name: 'exp null', reason: 'claim_invalid', token: () => sign(es256, claims({ exp: null })) },
  { name: 'iat string', reason: 'claim_invalid', token: () => sign(es256, claims({ iat: '1767225600' })) },
  {
    name: 'exp before iat',
    reason: 'claim_invalid',
    token: () => sign(es256, claims({ iat: NOW_S, exp: NOW_S - 1 })),
  },
  { name: 'nbf string', reason: 'claim_invalid', token: () => sign(es256, claims({ nbf: 'now' })) },
  { name: 'sub number', reason: 'claim_invalid', token: () => sign(es256, claims({ sub: 42 })) },
  { name: 'sid object', reason: 'claim_invalid', token: () => sign(es256, claims({ sid: { a: 1 } })) },
  { name: 'scope array', reason: 'claim_invalid', token: () => sign(es256, claims({ scope: ['read'] })) },
  ...(['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'] as const).map((claim) => ({
    name: `missing ${claim}`,
    reason: 'claim_missing' as const,
    token: () => sign(es256, claims({ [claim]: undefined })),
  })),
  { name: 'oversized', reason: 'oversized', token: () => sign(es256, claims({ pad: 'x'.repeat(9000) })) },
  { name: 'empty string', reason: 'malformed', token: () => '' },
  { name: 'one segment', reason: 'malformed', token: () => 'abc' },
  { name: 'two segments', reason: 'malformed', token: () => 'abc.def' },
  { name: 'four segments', reason: 'malformed', token: async () => `${await sign(es256)}.x` },
  {
    name: 'empty header segment',
    reason: 'malformed',
    token: async () => `.${(await sign(es256)).split('.').slice(1).join('.')}`,
  },
  {
    name: 'standard base64 characters',
    reason: 'malformed',
    token: async () => (await sign(es256)).replace(/^(.)/, '+'),
  },
  { name: 'padding', reason: 'malformed', token: async () => (await sign(es256)).replace('.', '=.') },
  { name: 'whitespace', reason: 'malformed', token: async () => ` ${await sign(es256)}` },
  {
    name: 'header not JSON',
    reason: 'malformed',
    token: () => `${base64url.encode('{alg:')}.${base64url.encode('{}')}.c2ln`,
  },
  { name: 'header a JSON array', reason: 'malformed', token: () => unsigned(['ES256'], claims(), 'c2ln') },
  { name: 'header JSON null', reason: 'malformed', token: () => unsigned(null, claims(), 'c2ln') },
  {
    name: 'header invalid UTF-8',
    reason: 'malformed',
    token: () => `${base64url.encode(new Uint8Array([0x7b, 0xff, 0x7d]))}.e30.c2ln`,
  },
  { name: 'header segment of impossible length', reason: 'malformed', token: () => 'eyJhb.e30.c2ln' },
  {
    name: 'payload not JSON',
    reason: 'malformed',
    token: () =>
      `${base64url.encode(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: es256.kid }))}.${base64url.encode('not json')}.c2ln`,
  },
  {
    name: 'payload a JSON string',
    reason: 'malformed',
    token: () => unsigned({ alg: 'ES256', typ: 'at+jwt', kid: es256.kid }, '"x"', 'c2ln'),
  },
];

describe('AccessTokenVerifier rejects (hostile input)', () => {
  for (const row of hostile) {
    test(`${row.name} → ${row.reason}`, async () => {
      const decision = await verify(await row.token());
      assert.deepEqual(decision, { ok: false, error: 'invalid_token', reason: row.reason });
    });
  }

  test('never throws, whatever the input type', async () => {
    for (const input of [undefined, null, 42, {}, ['a.b.c']] as unknown as string[]) {
      assert.equal(reasonOf(await verify(input)), 'malformed');
    }
  });

  test('rejections are shared frozen values (nothing allocated per rejection)', async () => {
    const v = verifier();
    const a = v.verify('abc', NOW_MS);
    const b = v.verify('def', NOW_MS);
    assert.equal(a, b);
    assert.ok(Object.isFrozen(a));
  });

  test('an unknown kid asks for a key refresh; other failures do not', async () => {
    const asked: string[] = [];
    const v = verifier({ onUnknownKid: (kid) => asked.push(kid) });
    await v.verify(await sign(attacker), NOW_MS);
    await v.verify(await sign(attacker, claims({ iss: 'https://evil.test' })), NOW_MS);
    await v.verify(unsigned({ alg: 'none', typ: 'at+jwt', kid: 'x' }, claims()), NOW_MS);
    assert.deepEqual(asked, ['attacker']);
  });

  test('answers synchronously, with or without signature verification', async () => {
    const v = verifier();
    const cheap = v.verify(await sign(es256, claims({ aud: 'x' })), NOW_MS);
    assert.ok(!(cheap instanceof Promise));
    assert.equal(reasonOf(cheap), 'aud_invalid');
    for (const key of [eddsa, es256, rs256, ps256]) {
      const full = v.verify(await sign(key), NOW_MS);
      assert.ok(!(full instanceof Promise), key.alg);
      assert.equal(reasonOf(full), 'ok', key.alg);
    }
    assert.equal(reasonOf(v.verify(await sign(impostor), NOW_MS)), 'signature_invalid');
  });

  test('maxTokenBytes bounds the token length', async () => {
    const token = await sign(es256);
    assert.equal(reasonOf(await verify(token, { maxTokenBytes: token.length })), 'ok');
    assert.equal(reasonOf(await verify(token, { maxTokenBytes: token.length - 1 })), 'oversized');
  });

  test('an algorithm left out of the allowlist is refused even with a matching published key', async () => {
    assert.equal(
      reasonOf(await verify(await sign(rs256), { algorithms: ['EdDSA', 'ES256'] })),
      'alg_not_allowed',
    );
  });
});

describe('AccessTokenVerifier cache of verified tokens', () => {
  test('returns the same frozen decision for a repeated token, synchronously', async () => {
    const v = verifier({ cacheSize: 10 });
    const token = await sign(eddsa);
    const first = await v.verify(token, NOW_MS);
    const second = v.verify(token, NOW_MS + 1000);
    assert.ok(first.ok);
    assert.equal(second, first);
    assert.ok(Object.isFrozen(first.claims));
    assert.throws(() => {
      (first.claims as Record<string, unknown>).sub = 'mallory';
    });
  });

  test('checks time claims again on every use', async () => {
    const v = verifier({ cacheSize: 10, clockSkewSeconds: 0 });
    const token = await sign(eddsa, claims({ exp: NOW_S + 60 }));
    assert.equal(reasonOf(await v.verify(token, NOW_MS)), 'ok');
    assert.equal(reasonOf(await v.verify(token, NOW_MS + 60_000)), 'expired');
    assert.equal(v.cachedTokens, 0);
  });

  test('is bounded and cleared on demand', async () => {
    const v = verifier({ cacheSize: 2 });
    for (const jti of ['a', 'b', 'c']) await v.verify(await sign(eddsa, claims({ jti })), NOW_MS);
    assert.equal(v.cachedTokens, 2);
    v.clearCache();
    assert.equal(v.cachedTokens, 0);
  });

  test('never remembers a rejected token', async () => {
    const v = verifier({ cacheSize: 10 });
    await v.verify(await sign(impostor), NOW_MS);
    assert.equal(v.cachedTokens, 0);
  });
});

describe('AccessTokenVerifier options', () => {
  const cases: Array<[string, Partial<VerifierOptions>]> = [
    ['HS256 in the allowlist', { algorithms: ['HS256' as never] }],
    ['none in the allowlist', { algorithms: ['none' as never] }],
    ['empty allowlist', { algorithms: [] }],
    ['empty audience', { audience: [] }],
    ['negative skew', { clockSkewSeconds: -1 }],
    ['skew over 300 s', { clockSkewSeconds: 301 }],
    ['non-integer lifetime', { maxTokenLifetimeSeconds: 1.5 }],
    ['NaN lifetime', { maxTokenLifetimeSeconds: Number.NaN }],
    ['empty issuer', { issuer: '' }],
  ];
  for (const [name, options] of cases) {
    test(`rejects ${name}`, () => {
      assert.throws(
        () => verifier(options),
        (error: unknown) => error instanceof GuardError && error.code === 'REVOKD_GUARD_CONFIG',
      );
    });
  }
});

describe('KeySet', () => {
  test('skips symmetric, encryption, unusable and kid-less keys, and never imports private members', async () => {
    const set = await KeySet.fromJwks(
      {
        keys: [
          { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac', alg: 'HS256' },
          { ...es256.jwk, kid: 'enc', use: 'enc' },
          { ...es256.jwk, kid: 'wrap', key_ops: ['wrapKey'] },
          { ...es256.jwk, kid: undefined },
          { ...es256.jwk, kid: 'p384', crv: 'P-384' },
          { ...rs256.jwk, kid: 'rsa-any', alg: undefined },
          { ...rs256.jwk, kid: 'bad-alg', alg: 'RS384' },
          'not a key',
          es256.jwk,
        ],
      },
      ['EdDSA', 'ES256', 'RS256', 'PS256'],
    );
    assert.deepEqual(set.kids.sort(), [es256.kid, 'rsa-any'].sort());
    assert.deepEqual([...(set.lookup('rsa-any')?.keys() ?? [])].sort(), ['PS256', 'RS256']);
    assert.equal(set.lookup('hmac'), undefined);
  });

  test('an HS256 token naming a published oct key is refused for its algorithm', async () => {
    const set = await KeySet.fromJwks({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }] }, ['ES256']);
    const v = new AccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: set });
    const token = await sign(es256, claims(), {
      header: { alg: 'HS256', kid: 'hmac' },
      key: new TextEncoder().encode('secret'),
    });
    assert.equal(reasonOf(await v.verify(token, NOW_MS)), 'alg_not_allowed');
  });

  test('rejects a document that is not a JWKS', async () => {
    await assert.rejects(KeySet.fromJwks({ keys: 'x' }, ['ES256']), TypeError);
    await assert.rejects(KeySet.fromJwks(null, ['ES256']), TypeError);
  });
});
