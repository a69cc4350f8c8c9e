import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BACKCHANNEL_LOGOUT_EVENT,
  type LogoutRejectReason,
  LogoutTokenValidator,
} from '../src/backchannel/logout-token.ts';
import {
  type BackchannelLogoutReceiverOptions,
  createBackchannelLogoutReceiver,
} from '../src/backchannel/receiver.ts';
import type { Rule } from '../src/model/rule.ts';
import { KeySet } from '../src/verify/key-set.ts';
import { BASE, waitFor } from './support/fake-server.ts';
import { events, startGuard } from './support/guard-setup.ts';
import { claims, ISSUER, makeKey, NOW_MS, NOW_S, sign, unsigned } from './support/keys.ts';

/** The relying party's client id: the `aud` of its logout tokens. */
const RP = 'billing-app';
const FORM = 'application/x-www-form-urlencoded';

const key = await makeKey('EdDSA', 'op-key');
const rsa = await makeKey('RS256', 'op-rsa');
/** Not published: the attacker's key, under the published kid. */
const impostor = { ...(await makeKey('EdDSA')), kid: key.kid };
const keys = await KeySet.fromJwks({ keys: [key.jwk, rsa.jwk] }, ['EdDSA', 'ES256', 'RS256', 'PS256']);

let jtiCounter = 0;
function logoutClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    aud: RP,
    iat: NOW_S,
    exp: NOW_S + 120,
    jti: `logout-${++jtiCounter}`,
    sid: 'session-1',
    sub: 'alice',
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    ...overrides,
  };
}

function logoutToken(
  overrides: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  signer = key,
): Promise<string> {
  return sign(signer, logoutClaims(overrides), { header: { typ: 'logout+jwt', ...header } });
}

interface Setup {
  readonly rules: Rule[];
  readonly logouts: string[];
  readonly clock: { nowMs: number };
  readonly receiver: ReturnType<typeof createBackchannelLogoutReceiver>;
}

function setup(options: Partial<BackchannelLogoutReceiverOptions> = {}): Setup {
  const rules: Rule[] = [];
  const logouts: string[] = [];
  const clock = { nowMs: NOW_MS + 1000 };
  const receiver = createBackchannelLogoutReceiver({
    issuer: ISSUER,
    audience: RP,
    keys,
    guard: { revokeLocally: (rule) => rules.push(rule) },
    onLogout: (logout) => {
      logouts.push(logout.jti);
    },
    now: () => clock.nowMs,
    ...options,
  });
  return { rules, logouts, clock, receiver };
}

const form = (token: string) => new URLSearchParams({ logout_token: token }).toString();

function assertInvalidRequest(answer: { status: number; headers: Record<string, string>; body: string }) {
  assert.equal(answer.status, 400);
  assert.deepEqual(answer.headers, { 'cache-control': 'no-store', 'content-type': 'application/json' });
  assert.deepEqual(JSON.parse(answer.body), { error: 'invalid_request' });
}

describe('back-channel logout receiver accepts', () => {
  test('a valid logout token with sid and sub: one session rule, onLogout, 200 with no body and no-store', async () => {
    const { receiver, rules, logouts, clock } = setup();
    const token = await logoutToken({ jti: 'the-jti' });
    const answer = await receiver.handle(form(token), `${FORM}; charset=UTF-8`);
    assert.deepEqual(answer, { status: 200, headers: { 'cache-control': 'no-store' }, body: '' });
    // The rule outlives every access token issued before the logout: max lifetime 3600 s + skew 30 s.
    assert.deepEqual(rules, [{ kind: 'session', sid: 'session-1', expiresAtMs: clock.nowMs + 3_630_000 }]);
    assert.deepEqual(logouts, ['the-jti']);
  });

  test('a sub-only token: a subject not-before rule covering the logout second, never past receipt', async () => {
    const { receiver, rules, clock } = setup({ maxTokenLifetimeSeconds: 600, clockSkewSeconds: 10 });
    const receipt = await receiver.receive(await logoutToken({ sid: undefined, iat: NOW_S - 60 }));
    assert.ok(receipt.ok);
    const expected: Rule = {
      kind: 'subject',
      sub: 'alice',
      notBeforeUs: (NOW_S - 59) * 1_000_000,
      expiresAtMs: clock.nowMs + 610_000,
    };
    assert.deepEqual(rules, [expected]);
    assert.deepEqual(receipt.rules, [expected]);
    // Issued in the current second: the bound stops at the moment of receipt.
    const now = await receiver.receive(await logoutToken({ sid: undefined, sub: 'bob', iat: NOW_S + 1 }));
    assert.ok(now.ok);
    assert.equal((now.rules[0] as { notBeforeUs: number }).notBeforeUs, clock.nowMs * 1000);
  });

  test('typ absent or the generic JWT, aud as an array, RS256, no exp, extra claims and event members', async () => {
    const { receiver, rules } = setup();
    const tokens = [
      await logoutToken({}, { typ: undefined }),
      await logoutToken({}, { typ: 'JWT' }),
      await logoutToken({}, { typ: 'application/logout+jwt' }),
      await logoutToken({ aud: ['other', RP] }),
      await logoutToken({ exp: undefined, extra: { x: 1 } }),
      await logoutToken({ events: { [BACKCHANNEL_LOGOUT_EVENT]: {}, 'urn:other': { y: 2 } } }, {}, rsa),
    ];
    for (const token of tokens) {
      const receipt = await receiver.receive(token);
      assert.ok(receipt.ok, receipt.ok ? '' : receipt.reason);
    }
    assert.equal(rules.length, tokens.length);
  });

  test('a form already parsed by the framework (URLSearchParams), with or without a content type', async () => {
    const { receiver } = setup();
    const params = new URLSearchParams({ logout_token: await logoutToken() });
    assert.equal((await receiver.handle(params, undefined)).status, 200);
    const again = new URLSearchParams({ logout_token: await logoutToken() });
    assert.equal((await receiver.handle(again, FORM)).status, 200);
  });

  test('publishes a logout event with jti, sid and sub, and a logout_rejected event with the reason', async (t) => {
    const seen = events(t);
    const { receiver } = setup();
    await receiver.handle(form(await logoutToken({ jti: 'evt' })), FORM);
    await receiver.handle(form(await logoutToken({ nonce: 'n' })), FORM);
    await receiver.handle('logout_token=a&logout_token=b', FORM);
    assert.deepEqual(seen, [
      { type: 'logout', jti: 'evt', sid: 'session-1', sub: 'alice' },
      { type: 'logout_rejected', reason: 'nonce_present' },
      { type: 'logout_rejected', reason: 'invalid_request' },
    ]);
  });
});

describe('back-channel logout receiver refuses (hostile input)', () => {
  const rows: ReadonlyArray<{
    readonly name: string;
    readonly token: () => Promise<string>;
    readonly reason: LogoutRejectReason;
  }> = [
    { name: 'missing events', token: () => logoutToken({ events: undefined }), reason: 'events_invalid' },
    {
      name: 'events without the logout member',
      token: () => logoutToken({ events: { 'urn:x': {} } }),
      reason: 'events_invalid',
    },
    {
      name: 'events member that is not an object',
      token: () => logoutToken({ events: { [BACKCHANNEL_LOGOUT_EVENT]: true } }),
      reason: 'events_invalid',
    },
    {
      name: 'events as an array',
      token: () => logoutToken({ events: [BACKCHANNEL_LOGOUT_EVENT] }),
      reason: 'events_invalid',
    },
    { name: 'nonce present', token: () => logoutToken({ nonce: 'abc' }), reason: 'nonce_present' },
    { name: 'wrong aud', token: () => logoutToken({ aud: 'another-app' }), reason: 'aud_invalid' },
    {
      name: 'aud array without the client',
      token: () => logoutToken({ aud: ['a', 'b'] }),
      reason: 'aud_invalid',
    },
    { name: 'aud of the wrong type', token: () => logoutToken({ aud: 42 }), reason: 'claim_invalid' },
    { name: 'wrong iss', token: () => logoutToken({ iss: 'https://evil.test' }), reason: 'iss_invalid' },
    { name: 'missing iss', token: () => logoutToken({ iss: undefined }), reason: 'claim_missing' },
    { name: 'missing jti', token: () => logoutToken({ jti: undefined }), reason: 'claim_missing' },
    { name: 'missing iat', token: () => logoutToken({ iat: undefined }), reason: 'claim_missing' },
    { name: 'iat not a number', token: () => logoutToken({ iat: '1767225600' }), reason: 'claim_invalid' },
    { name: 'expired', token: () => logoutToken({ iat: NOW_S - 200, exp: NOW_S - 60 }), reason: 'expired' },
    { name: 'exp before iat', token: () => logoutToken({ exp: NOW_S - 1 }), reason: 'claim_invalid' },
    {
      name: 'iat too old (no exp)',
      token: () => logoutToken({ iat: NOW_S - 400, exp: undefined }),
      reason: 'iat_too_old',
    },
    {
      name: 'iat in the future',
      token: () => logoutToken({ iat: NOW_S + 120, exp: NOW_S + 240 }),
      reason: 'iat_in_future',
    },
    {
      name: 'no sid and no sub',
      token: () => logoutToken({ sid: undefined, sub: undefined }),
      reason: 'subject_missing',
    },
    { name: 'empty sid', token: () => logoutToken({ sid: '' }), reason: 'claim_invalid' },
    {
      name: 'typ at+jwt (an access token)',
      token: () => logoutToken({}, { typ: 'at+jwt' }),
      reason: 'typ_invalid',
    },
    {
      name: 'an access token as is',
      token: () => sign(key, claims({ aud: RP })),
      reason: 'typ_invalid',
    },
    {
      name: 'an ID-token-shaped JWT (no events, a nonce)',
      token: () => logoutToken({ events: undefined, nonce: 'n' }, { typ: 'JWT' }),
      reason: 'events_invalid',
    },
    {
      name: 'bad signature (attacker key, published kid)',
      token: () => logoutToken({}, {}, impostor),
      reason: 'signature_invalid',
    },
    {
      name: 'alg none',
      token: async () => unsigned({ alg: 'none', typ: 'logout+jwt', kid: key.kid }, logoutClaims()),
      reason: 'alg_not_allowed',
    },
    {
      name: 'HS256 keyed with the public key (algorithm confusion)',
      token: () =>
        sign(key, logoutClaims(), {
          header: { alg: 'HS256', typ: 'logout+jwt' },
          key: new TextEncoder().encode(JSON.stringify(key.jwk)),
        }),
      reason: 'alg_not_allowed',
    },
    {
      name: 'RS256 header on the EdDSA key',
      token: () => logoutToken({}, { alg: 'RS256' }, { ...rsa, kid: key.kid }),
      reason: 'key_mismatch',
    },
    { name: 'unknown kid', token: () => logoutToken({}, { kid: 'nope' }), reason: 'kid_unknown' },
    { name: 'no kid', token: () => logoutToken({}, { kid: undefined }), reason: 'kid_missing' },
    {
      name: 'crit header',
      token: () =>
        sign(key, logoutClaims(), {
          header: { typ: 'logout+jwt', crit: ['urn:x'], 'urn:x': 1 },
          crit: { 'urn:x': true },
        }),
      reason: 'crit_unsupported',
    },
    { name: 'not a JWS', token: async () => 'not.a-token', reason: 'malformed' },
    {
      name: 'payload not JSON',
      token: async () => unsigned({ alg: 'EdDSA', kid: key.kid }, 'nope', 'sig'),
      reason: 'malformed',
    },
    { name: 'oversized', token: () => logoutToken({ pad: 'x'.repeat(9000) }), reason: 'oversized' },
  ];

  for (const row of rows) {
    test(`${row.name} → ${row.reason}, 400 invalid_request, nothing revoked`, async () => {
      const { receiver, rules, logouts } = setup();
      const token = await row.token();
      const receipt = await receiver.receive(token);
      assert.deepEqual(receipt, { ok: false, reason: row.reason });
      assertInvalidRequest(await receiver.handle(form(token), FORM));
      assert.deepEqual(rules, []);
      assert.deepEqual(logouts, []);
    });
  }

  test('a replayed jti → replayed, 400; the first delivery alone revoked', async () => {
    const { receiver, rules } = setup();
    const token = await logoutToken({ jti: 'once' });
    assert.equal((await receiver.handle(form(token), FORM)).status, 200);
    assertInvalidRequest(await receiver.handle(form(token), FORM));
    assert.deepEqual(await receiver.receive(token), { ok: false, reason: 'replayed' });
    // Another token with the same jti (signed again, for another session) is a replay too.
    const sameJti = await logoutToken({ jti: 'once', sid: 'session-2' });
    assert.deepEqual(await receiver.receive(sameJti), { ok: false, reason: 'replayed' });
    assert.equal(rules.length, 1);
  });

  test('concurrent deliveries of one token: exactly one is accepted', async () => {
    const { receiver, rules } = setup();
    const token = await logoutToken();
    const answers = await Promise.all(Array.from({ length: 10 }, () => receiver.handle(form(token), FORM)));
    assert.equal(answers.filter((a) => a.status === 200).length, 1);
    assert.equal(rules.length, 1);
  });

  const requests: ReadonlyArray<readonly [string, string | URLSearchParams, string | undefined]> = [
    ['a JSON content type', '{"logout_token":"x"}', 'application/json'],
    ['no content type with a raw body', 'logout_token=x', undefined],
    ['no logout_token', 'token=x', FORM],
    ['an empty logout_token', 'logout_token=', FORM],
    ['a repeated logout_token', 'logout_token=a&logout_token=b', FORM],
    ['a body above maxBodyBytes', `logout_token=${'a'.repeat(20_000)}`, FORM],
  ];
  for (const [name, body, contentType] of requests) {
    test(`a request with ${name} → 400 invalid_request`, async () => {
      const { receiver, rules } = setup();
      assertInvalidRequest(await receiver.handle(body, contentType));
      assert.deepEqual(rules, []);
    });
  }

  test('the wrong content type is refused even for a valid token', async () => {
    const { receiver, rules } = setup();
    assertInvalidRequest(await receiver.handle(form(await logoutToken()), 'text/plain'));
    assert.deepEqual(rules, []);
  });
});

describe('back-channel logout receiver, failures and bounds', () => {
  test('onLogout throwing answers 500 and lets the same token through on the provider retry', async () => {
    let fail = true;
    const { receiver, rules } = setup({
      onLogout: () => {
        if (fail) throw new Error('session store down');
      },
    });
    const token = await logoutToken();
    const first = await receiver.handle(form(token), FORM);
    assert.equal(first.status, 500);
    assert.deepEqual(JSON.parse(first.body), { error: 'server_error' });
    assert.equal(first.headers['cache-control'], 'no-store');
    assert.equal(rules.length, 1, 'the local rule is written first: fail closed');
    fail = false;
    assert.equal((await receiver.handle(form(token), FORM)).status, 200);
    await assert.rejects(
      (async () => {
        fail = true;
        await receiver.receive(await logoutToken());
      })(),
      /session store down/,
    );
  });

  test('the replay cache is bounded; an evicted jti is still refused once its exp has passed', async () => {
    const validator = new LogoutTokenValidator({ issuer: ISSUER, audience: RP, keys, replayCacheSize: 2 });
    const tokens = await Promise.all([1, 2, 3].map((i) => logoutToken({ jti: `j${i}` })));
    for (const token of tokens) assert.equal(validator.validate(token, NOW_MS).ok, true);
    assert.equal(validator.rememberedTokens, 2);
    assert.deepEqual(validator.validate(tokens[2]!, NOW_MS), { ok: false, reason: 'replayed' });
    // j1 was evicted from the cache; it is refused anyway once its exp has passed.
    assert.deepEqual(validator.validate(tokens[0]!, NOW_MS + 400_000), {
      ok: false,
      reason: 'expired',
    });
  });

  test('entries leave the replay cache once their token could not be accepted anyway', async () => {
    const validator = new LogoutTokenValidator({
      issuer: ISSUER,
      audience: RP,
      keys,
      maxTokenAgeSeconds: 60,
    });
    assert.equal(validator.validate(await logoutToken({ exp: NOW_S + 30 }), NOW_MS).ok, true);
    assert.equal(validator.rememberedTokens, 1);
    // iat + 60 s + skew 30 s has passed: the next validation forgets it.
    assert.equal(
      validator.validate(await logoutToken({ iat: NOW_S + 91, exp: undefined }), NOW_MS + 91_000).ok,
      true,
    );
    assert.equal(validator.rememberedTokens, 1);
  });

  test('with jwksUri: keys fetched on first use; unreachable keys answer 503, not 400', async () => {
    let up = false;
    let fetches = 0;
    const fetch = (async () => {
      fetches++;
      if (!up) throw new TypeError('fetch failed');
      return new Response(JSON.stringify({ keys: [key.jwk] }), {
        headers: { 'content-type': 'application/json' },
      });
    }) as typeof globalThis.fetch;
    const { receiver, rules } = setup({ keys: undefined, jwksUri: 'https://op.test/jwks', fetch });
    const down = await receiver.handle(form(await logoutToken()), FORM);
    assert.equal(down.status, 503);
    assert.deepEqual(JSON.parse(down.body), { error: 'temporarily_unavailable' });
    up = true;
    assert.equal((await receiver.handle(form(await logoutToken()), FORM)).status, 200);
    assert.equal((await receiver.handle(form(await logoutToken()), FORM)).status, 200);
    assert.equal(fetches, 2, 'fetched once more, then reused');
    assert.equal(rules.length, 2);
    receiver.close();
  });

  test('options are validated eagerly', () => {
    const base = { issuer: ISSUER, audience: RP, keys };
    assert.throws(
      () => createBackchannelLogoutReceiver({ ...base, keys: undefined }),
      /exactly one of keys and jwksUri/,
    );
    assert.throws(
      () => createBackchannelLogoutReceiver({ ...base, jwksUri: 'https://op.test/jwks' }),
      /exactly one/,
    );
    assert.throws(() => createBackchannelLogoutReceiver({ ...base, audience: '' }), /audience/);
    assert.throws(
      () => createBackchannelLogoutReceiver({ ...base, jwksUri: undefined, keys: undefined }),
      /exactly one/,
    );
    assert.throws(
      () => createBackchannelLogoutReceiver({ ...base, maxTokenLifetimeSeconds: 0 }),
      /maxTokenLifetimeSeconds/,
    );
    assert.throws(() => createBackchannelLogoutReceiver({ ...base, guard: {} as never }), /revokeLocally/);
    assert.throws(
      () => createBackchannelLogoutReceiver({ ...base, keys: undefined, jwksUri: 'http://op.example/jwks' }),
      /jwksUri/,
    );
  });
});

describe('back-channel logout with a guard', () => {
  test('the guard rejects the session’s tokens at once, keeps the rule across a snapshot reload, and its other sessions live', async (t) => {
    // The guard's default staleness bound (30 s), as this test ran before the shared setup.
    const { server, guard, clock } = startGuard(t, key, { maxStalenessMs: undefined });
    const stream = await server.stream(0);
    stream.heartbeat(0);
    await guard.ready();

    const inSession = await sign(key, claims({ sid: 'session-1', jti: 'a1' }));
    const otherSession = await sign(key, claims({ sid: 'session-2', jti: 'a2' }));
    assert.equal(guard.check(inSession).ok, true);

    const receiver = createBackchannelLogoutReceiver({
      issuer: BASE,
      audience: RP,
      keys: guard.keys,
      guard,
      now: () => clock.nowMs,
    });
    assert.equal((await receiver.handle(form(await logoutToken()), FORM)).status, 200);
    assert.deepEqual(guard.check(inSession), {
      ok: false,
      status: 401,
      error: 'invalid_token',
      reason: 'revoked',
      revokedBy: 'session',
    });
    assert.equal(guard.check(otherSession).ok, true);

    // The feed replaces its index from a snapshot: the local rule stays.
    stream.reset(0);
    const second = await server.stream(1);
    second.heartbeat(0);
    await waitFor(() => guard.health().state === 'live');
    assert.equal(guard.check(inSession).ok, false);

    assert.throws(() => guard.revokeLocally({ kind: 'session' } as unknown as Rule), TypeError);
    receiver.close();
  });
});
