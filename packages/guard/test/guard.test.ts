import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { backoffDelayMs } from '../src/feed/follower.ts';
import { createGuard, type GuardOptions } from '../src/guard.ts';
import { BASE, FakeServer, waitFor } from './support/fake-server.ts';
import { events, startGuard } from './support/guard-setup.ts';
import { AUDIENCE, claims, makeKey, NOW_MS, sign } from './support/keys.ts';

const key = await makeKey('EdDSA', 'k1');
const rotated = await makeKey('EdDSA', 'k2');

/** Starts a guard and makes it live on its first stream. */
async function live(t: Pick<TestContext, 'after'>, options: Partial<GuardOptions> = {}, server?: FakeServer) {
  const s = startGuard(t, key, options, server);
  const stream = await s.server.stream(0);
  stream.heartbeat(s.server.snapshot.cursor);
  await s.guard.ready();
  return { ...s, stream };
}

describe('createGuard', () => {
  test('discovers the JWKS from the metadata, loads the snapshot, follows the stream, accepts a valid token', async (t) => {
    const { server, guard } = await live(t);
    const metadataAt = server.requests.indexOf('/.well-known/oauth-authorization-server');
    assert.ok(metadataAt >= 0 && metadataAt < server.requests.indexOf('/jwks.json'));
    assert.equal(server.streams[0]!.after, 0);
    const token = await sign(key);
    const decision = guard.check(`Bearer ${token}`);
    assert.ok(decision.ok);
    assert.equal(decision.claims.sub, 'alice');
    assert.equal(decision.stale, undefined);
    assert.equal(guard.check(token).ok, true, 'a bare token is accepted too');
    assert.equal(guard.health().state, 'live');
  });

  test('starts from the snapshot: a token revoked before start is rejected', async (t) => {
    const server = new FakeServer();
    server.snapshot = { cursor: 4, rules: [{ kind: 'token', jti: 'jti-1', expiresAtMs: NOW_MS + 600_000 }] };
    const { guard } = await live(t, { jwksUri: `${BASE}/jwks.json` }, server);
    assert.equal(server.count('/.well-known'), 0, 'an explicit jwksUri skips discovery');
    assert.equal(server.streams[0]!.after, 4);
    assert.equal(guard.health().cursor, 4);
    assert.equal(guard.health().activeRules, 1);
    assert.deepEqual(guard.check(await sign(key)), {
      ok: false,
      status: 401,
      error: 'invalid_token',
      reason: 'revoked',
      revokedBy: 'token',
    });
  });

  test('applies live entries: revoked tokens, subjects, claims', async (t) => {
    const { guard, stream } = await live(t);
    const token = await sign(key);
    assert.equal(guard.check(token).ok, true);
    stream.entries([{ cursor: 1, rule: { kind: 'token', jti: 'jti-1', expiresAtMs: NOW_MS + 600_000 } }]);
    await waitFor(() => !guard.check(token).ok, { what: 'revocation' });
    assert.deepEqual(guard.check(token), {
      ok: false,
      status: 401,
      error: 'invalid_token',
      reason: 'revoked',
      revokedBy: 'token',
    });
    const admin = await sign(key, claims({ jti: 'j2', sub: 'bob', roles: ['admin'] }));
    stream.entries([
      {
        cursor: 2,
        rule: {
          kind: 'claim',
          claim: 'roles',
          value: 'admin',
          notBeforeUs: NOW_MS * 1000 + 1,
          expiresAtMs: NOW_MS + 1e6,
        },
      },
    ]);
    await waitFor(async () => guard.check(admin).ok === false, { what: 'claim rule' });
    assert.equal(guard.health().cursor, 2);
  });

  test('after a disconnect, resumes from its cursor without reloading the snapshot', async (t) => {
    const seen = events(t);
    const { server, guard, stream } = await live(t);
    stream.entries([{ cursor: 3, rule: { kind: 'session', sid: 's', expiresAtMs: NOW_MS + 1e6 } }]);
    await waitFor(() => guard.health().cursor === 3);
    stream.end();
    const second = await server.stream(1);
    assert.equal(second.after, 3);
    assert.equal(server.count('/revocations/snapshot'), 1);
    second.heartbeat(3);
    await waitFor(() => guard.health().state === 'live');
    assert.ok(guard.health().reconnects >= 1);
    assert.ok(seen.some((e) => e.type === 'disconnected'));
  });

  test('a reset reloads the snapshot and follows from its cursor', async (t) => {
    const { server, guard, stream } = await live(t);
    stream.entries([{ cursor: 9, rule: { kind: 'token', jti: 'jti-1', expiresAtMs: NOW_MS + 1e6 } }]);
    await waitFor(() => guard.health().cursor === 9);
    server.snapshot = { cursor: 2, rules: [] };
    stream.reset(2);
    const second = await server.stream(1);
    assert.equal(second.after, 2);
    assert.equal(server.count('/revocations/snapshot'), 2);
    second.heartbeat(2);
    await waitFor(() => guard.health().state === 'live');
    assert.equal(guard.health().cursor, 2);
    assert.equal(guard.check(await sign(key)).ok, true, 'the replaced log no longer revokes it');
  });

  test('repeated resets without going live back off instead of spinning', async (t) => {
    const { server, stream } = await live(t, { reconnect: { initialDelayMs: 40, maxDelayMs: 1000 } });
    stream.reset(0);
    const started = Date.now();
    for (let i = 1; Date.now() - started < 400; i++) {
      const next = await server.stream(i, 1000).catch(() => undefined);
      if (!next) break;
      next.reset(0);
    }
    // Immediate, then ~40, ~80, ~160 ms…: a handful of reloads in 400 ms, not hundreds.
    assert.ok(
      server.count('/revocations/snapshot') <= 8,
      `${server.count('/revocations/snapshot')} snapshots`,
    );
  });

  test('a heartbeat behind the applied cursor also reloads the snapshot', async (t) => {
    const { server, guard, stream } = await live(t);
    stream.entries([{ cursor: 5, rule: { kind: 'token', jti: 'x', expiresAtMs: NOW_MS + 1e6 } }]);
    await waitFor(() => guard.health().cursor === 5);
    stream.heartbeat(1);
    await server.stream(1);
    assert.equal(server.count('/revocations/snapshot'), 2);
  });

  test('an invalid frame drops the connection, applies nothing, and resumes from the same cursor', async (t) => {
    const { server, guard, stream } = await live(t);
    stream.send(
      'event: entries\ndata: {"entries":[{"cursor":1,"rule":{"kind":"mystery","expiresAtMs":1}}]}\n\n',
    );
    const second = await server.stream(1);
    assert.equal(second.after, 0);
    assert.equal(guard.health().cursor, 0);
    assert.equal(guard.health().lastError?.code, 'REVOKD_GUARD_PROTOCOL');
  });

  test('a silent stream is dropped after idleTimeoutMs', async (t) => {
    const { server } = await live(t, { idleTimeoutMs: 150 });
    const second = await server.stream(1, 3000);
    assert.equal(second.after, 0);
  });

  test('stale: rejects with 503 when freshness is not confirmed within maxStalenessMs, live again after a heartbeat', async (t) => {
    const { guard, clock, stream } = await live(t);
    const token = await sign(key, claims({ exp: NOW_MS / 1000 + 3600 }));
    clock.nowMs += 10_001;
    assert.equal(guard.health().state, 'stale');
    assert.ok((guard.health().lagMs ?? 0) > 10_000);
    assert.deepEqual(guard.check(token), {
      ok: false,
      status: 503,
      error: 'temporarily_unavailable',
      reason: 'stale',
    });
    stream.heartbeat(0);
    await waitFor(() => guard.health().state === 'live');
    assert.equal(guard.check(token).ok, true);
  });

  test("stale with stalePolicy 'accept': accepted and marked stale; revoked tokens are still rejected", async (t) => {
    const { guard, clock, stream } = await live(t, { stalePolicy: 'accept' });
    stream.entries([{ cursor: 1, rule: { kind: 'token', jti: 'gone', expiresAtMs: NOW_MS + 1e7 } }]);
    await waitFor(() => guard.health().cursor === 1);
    clock.nowMs += 20_000;
    const decision = guard.check(await sign(key, claims({ exp: NOW_MS / 1000 + 3600 })));
    assert.ok(decision.ok);
    assert.equal(decision.stale, true);
    const revoked = guard.check(await sign(key, claims({ jti: 'gone', exp: NOW_MS / 1000 + 3600 })));
    assert.equal(revoked.ok, false);
  });

  test('an unknown kid refreshes the JWKS, at most once per jwksMinRefreshIntervalMs', async (t) => {
    const { server, guard, clock } = await live(t);
    const fetchesBefore = server.count('/jwks.json');
    const newToken = await sign(rotated);
    // The initial load counts as a refresh: nothing more within the interval.
    guard.check(newToken);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(server.count('/jwks.json'), fetchesBefore);
    clock.nowMs += 30_000;
    for (let i = 0; i < 20; i++) {
      assert.equal(guard.check(await sign(rotated, claims({ jti: `x${i}` }))).ok, false);
    }
    await waitFor(() => server.count('/jwks.json') === fetchesBefore + 1);
    // Still unknown (not yet published): no further fetch within the interval.
    for (let i = 0; i < 20; i++) guard.check(newToken);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(server.count('/jwks.json'), fetchesBefore + 1);
    // Published now; after the interval the next unknown kid triggers one refresh and the key is used.
    server.jwks = { keys: [key.jwk, rotated.jwk] };
    clock.nowMs += 30_000;
    guard.check(newToken);
    await waitFor(() => server.count('/jwks.json') === fetchesBefore + 2, { what: 'second refresh' });
    server.streams.at(-1)!.heartbeat(guard.health().cursor);
    await waitFor(async () => guard.check(newToken).ok, { what: 'new key accepted' });
  });

  test('never fetches jku, x5u or x5c URLs, nor uses an embedded jwk', async (t) => {
    const { server, guard } = await live(t);
    const attacker = await makeKey('EdDSA', 'attacker');
    const token = await sign(attacker, claims(), {
      header: {
        jku: 'https://evil.test/jwks',
        x5u: 'https://evil.test/cert',
        jwk: attacker.jwk,
        x5c: ['AAAA'],
      },
    });
    const forged = await sign(attacker, claims(), {
      header: { kid: key.kid, jku: 'https://evil.test/jwks' },
    });
    assert.equal(guard.check(token).ok, false);
    assert.deepEqual(guard.check(forged), {
      ok: false,
      status: 401,
      error: 'invalid_token',
      reason: 'signature_invalid',
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(
      server.requests.filter((r) => r.includes('evil')),
      [],
    );
  });

  test('header handling: missing, other scheme, malformed Bearer', async (t) => {
    const { guard } = await live(t);
    const missing = { ok: false, status: 401, error: undefined, reason: 'missing_token' };
    assert.deepEqual(guard.check(undefined), missing);
    assert.deepEqual(guard.check(''), missing);
    assert.deepEqual(guard.check('Basic YTpi'), missing);
    assert.deepEqual(guard.check('Bearer a b'), {
      ok: false,
      status: 401,
      error: 'invalid_token',
      reason: 'malformed',
    });
  });

  test('header handling: every spelling of Bearer decides as the RFC 6750 grammar says', async (t) => {
    const { guard } = await live(t);
    const token = await sign(key);
    const reasonOf = (header: string) => {
      const decision = guard.check(header);
      return decision.ok ? 'ok' : decision.reason;
    };
    for (const header of [
      `Bearer ${token}`,
      `bearer ${token}`,
      `BEARER ${token}`,
      `Bearer   ${token}`,
      `Bearer ${token}  `,
      `Bearer ${token}\t`,
      ` Bearer ${token}`,
      `\tBearer ${token}`,
    ]) {
      assert.equal(reasonOf(header), 'ok', JSON.stringify(header.replace(token, '<token>')));
    }
    const half = token.length >> 1;
    for (const header of [
      `Bearer\t${token}`,
      `Bearer ${token.slice(0, half)} ${token.slice(half)}`,
      `Bearer ${token.slice(0, half)}\n${token.slice(half)}`,
      `Bearer ${token}\n`,
      `Bearer ${token}=`,
      `Bearer ${token}~`,
      `Bearer ${token}é`,
      `Bearer ${token},`,
      `Bearer ${'x'.repeat(9000)} y`,
      `Bearer ${'x'.repeat(9000)}é`,
    ]) {
      assert.equal(
        reasonOf(header),
        'malformed',
        JSON.stringify(header.replace(token, '<token>').slice(0, 40)),
      );
    }
    assert.equal(reasonOf(`Bearer ${'x'.repeat(9000)}`), 'oversized');
  });

  test('answers not_ready (503) before the keys are loaded', async (t) => {
    const hanging = (_url: unknown, init?: RequestInit) =>
      new Promise<Response>((_, reject) =>
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason)),
      );
    const { guard } = startGuard(t, key, { fetch: hanging as typeof fetch });
    assert.deepEqual(guard.check(await sign(key)), {
      ok: false,
      status: 503,
      error: 'temporarily_unavailable',
      reason: 'not_ready',
    });
    assert.equal(guard.health().state, 'starting');
  });

  test('ready() rejects when the server refuses the credentials', async (t) => {
    const { guard } = startGuard(t, key, { clientSecret: 'wrong' });
    await assert.rejects(guard.ready(), { code: 'REVOKD_GUARD_UNAUTHORIZED' });
  });

  test('ready() rejects after readyTimeoutMs when the server cannot be reached', async (t) => {
    const { guard } = startGuard(t, key, {
      serverUrl: 'https://down.test',
      jwksUri: `${BASE}/jwks.json`,
      readyTimeoutMs: 100,
    });
    await assert.rejects(guard.ready(), { code: 'REVOKD_GUARD_NOT_READY' });
  });

  test('prunes expired rules on its timer', async (t) => {
    const server = new FakeServer();
    server.jwks = { keys: [key.jwk] };
    server.snapshot = {
      cursor: 2,
      rules: [
        { kind: 'token', jti: 'short', expiresAtMs: NOW_MS + 1000 },
        { kind: 'token', jti: 'long', expiresAtMs: NOW_MS + 1e7 },
      ],
    };
    const { guard, clock } = await live(t, { pruneIntervalMs: 100 }, server);
    assert.equal(guard.health().activeRules, 2);
    clock.nowMs += 2000;
    await waitFor(() => guard.health().activeRules === 1, { what: 'pruning' });
  });

  test('validates options eagerly, naming the key', () => {
    const base = { issuer: BASE, audience: AUDIENCE, clientId: 'a', clientSecret: 'b' };
    const bad: Array<[Partial<GuardOptions>, RegExp]> = [
      [{ issuer: '' }, /issuer/],
      [{ clientSecret: '' }, /clientSecret/],
      [{ serverUrl: 'http://example.com' }, /serverUrl/],
      [{ jwksUri: 'not a url' }, /jwksUri/],
      [{ maxStalenessMs: -1 }, /maxStalenessMs/],
      [{ stalePolicy: 'maybe' as never }, /stalePolicy/],
      [{ mode: 'allow' as never }, /mode/],
      [{ clockSkewSeconds: 1000 }, /clockSkewSeconds/],
      [{ algorithms: ['HS256' as never] }, /algorithms/],
      [{ reconnect: { initialDelayMs: 0 } }, /reconnect.initialDelayMs/],
    ];
    for (const [options, message] of bad) {
      assert.throws(() => createGuard({ ...base, ...options }), { code: 'REVOKD_GUARD_CONFIG', message });
    }
  });
});

describe('createGuard: allowlist mode', () => {
  const allow = (cursor: number, jti: string, expiresAtMs = NOW_MS + 600_000) => ({
    cursor,
    rule: { kind: 'allow', jti, expiresAtMs } as const,
  });

  test('accepts a token once its allow entry arrives; rejects others as not_allowed; revocations still apply', async (t) => {
    const server = new FakeServer();
    server.snapshot = { cursor: 1, rules: [{ kind: 'allow', jti: 'jti-1', expiresAtMs: NOW_MS + 600_000 }] };
    const { guard, stream } = await live(t, { mode: 'allowlist' }, server);
    assert.equal(guard.check(await sign(key)).ok, true, 'allowed by the snapshot');
    const later = await sign(key, claims({ jti: 'jti-2' }));
    const notAllowed = guard.check(later);
    assert.deepEqual(notAllowed, { ok: false, status: 401, error: 'invalid_token', reason: 'not_allowed' });
    assert.ok(Object.isFrozen(notAllowed));
    assert.equal(guard.check(await sign(key, claims({ jti: 'jti-3' }))), notAllowed, 'shared value');

    stream.entries([allow(2, 'jti-2')]);
    await waitFor(async () => guard.check(later).ok, { what: 'allow entry' });
    assert.equal(guard.health().activeRules, 2);

    stream.entries([{ cursor: 3, rule: { kind: 'token', jti: 'jti-2', expiresAtMs: NOW_MS + 600_000 } }]);
    await waitFor(() => !guard.check(later).ok, { what: 'revocation' });
    assert.deepEqual(guard.check(later), {
      ok: false,
      status: 401,
      error: 'invalid_token',
      reason: 'revoked',
      revokedBy: 'token',
    });
  });

  test('an allow entry stops allowing at its expiry and is pruned', async (t) => {
    const server = new FakeServer();
    server.snapshot = { cursor: 1, rules: [{ kind: 'allow', jti: 'jti-1', expiresAtMs: NOW_MS + 1000 }] };
    const { guard, clock } = await live(
      t,
      { mode: 'allowlist', pruneIntervalMs: 100, maxStalenessMs: 600_000 },
      server,
    );
    assert.equal(guard.health().activeRules, 1);
    clock.nowMs += 1000;
    await waitFor(() => guard.health().activeRules === 0, { what: 'pruning' });
  });

  test('the default (denylist) mode ignores allow entries: they hold no memory and reject nothing', async (t) => {
    const server = new FakeServer();
    server.snapshot = { cursor: 1, rules: [{ kind: 'allow', jti: 'other', expiresAtMs: NOW_MS + 600_000 }] };
    const { guard, stream } = await live(t, {}, server);
    stream.entries([allow(2, 'jti-9')]);
    await waitFor(() => guard.health().cursor === 2, { what: 'entry applied' });
    assert.equal(guard.health().activeRules, 0);
    assert.equal(guard.check(await sign(key)).ok, true);
  });

  test('revokeLocally refuses an allow entry', async (t) => {
    const { guard } = startGuard(t, key);
    assert.throws(() => guard.revokeLocally({ kind: 'allow', jti: 'x', expiresAtMs: NOW_MS + 1 }), TypeError);
  });
});

describe('backoffDelayMs', () => {
  test('doubles from the initial delay up to the maximum, jittered within the upper half', () => {
    assert.equal(
      backoffDelayMs(0, 100, 10_000, () => 0),
      50,
    );
    assert.equal(
      backoffDelayMs(0, 100, 10_000, () => 0.999999),
      100,
    );
    assert.equal(
      backoffDelayMs(3, 100, 10_000, () => 0),
      400,
    );
    assert.equal(
      backoffDelayMs(50, 100, 10_000, () => 0.999999),
      10_000,
    );
    assert.equal(
      backoffDelayMs(1000, 100, 10_000, () => 0),
      5000,
    );
  });
});
