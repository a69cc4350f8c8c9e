/**
 * Receipts and enforcement: guards report the cursor they have applied (`POST /revocations/receipts`), the
 * server lists them with their lag (`GET /admin/guards`), observes time-to-enforce, and revocations can wait
 * until every connected guard enforces them (`wait_ms`).
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createGuard } from '@revokd/guard';
import { ManualClock } from '../src/core/clock.ts';
import { admin, assertOAuthError, isActive, revoke } from './http/helpers.ts';
import { API, type InjectResult, ISSUER, startTestServer, type TestServer } from './support/harness.ts';

interface EnforcementBody {
  cursor: number | null;
  enforced_by: string[];
  pending: string[];
  timed_out: boolean;
}

async function setup(t: { after(fn: () => Promise<void>): void }, clock?: ManualClock) {
  const server = await startTestServer(clock ? { clock } : {});
  t.after(() => server.close());
  const token = await server.adminToken();
  const call = (method: 'GET' | 'POST', url: string, body?: unknown) =>
    admin(server, method, url, token, body);
  const receipt = (body: unknown, authorization = server.resourceServer.basic) =>
    server.app.inject({
      method: 'POST',
      url: '/revocations/receipts',
      headers: { authorization, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    }) as unknown as Promise<InjectResult>;
  return { server, call, receipt };
}

const cursorOf = (server: TestServer) => server.runtime.revocation.index.cursor;

test('receipts: authenticated like the stream, for a guard with a stream open, within the log', async (t) => {
  const { server, receipt } = await setup(t);
  const other = await server.addClient('other-rs', { canIntrospect: true });
  const plain = await server.addClient('plain');
  const release = server.runtime.guards.connect('rs-1', server.resourceServer.id, 0);
  assert.ok(release);

  const noAuth = await server.app.inject({
    method: 'POST',
    url: '/revocations/receipts',
    headers: { 'content-type': 'application/json' },
    payload: '{"guardId":"rs-1","cursor":0}',
  });
  assert.equal(noAuth.statusCode, 401);
  assertOAuthError(await receipt({ guardId: 'rs-1', cursor: 0 }, plain.basic), 403, 'access_denied');
  for (const body of [
    {},
    { guardId: 'rs-1' },
    { guardId: 'rs-1', cursor: -1 },
    { guardId: 'rs-1', cursor: 1.5 },
    { guardId: 'has space', cursor: 0 },
    { guardId: 'rs-1', cursor: 0, extra: true },
  ]) {
    assertOAuthError(await receipt(body), 400, 'invalid_request');
  }
  assertOAuthError(await receipt({ guardId: 'rs-1', cursor: 99 }), 400, 'invalid_request');
  assertOAuthError(await receipt({ guardId: 'nobody', cursor: 0 }), 404, 'not_found');
  assertOAuthError(await receipt({ guardId: 'rs-1', cursor: 0 }, other.basic), 404, 'not_found');

  const ok = await receipt({ guardId: 'rs-1', cursor: 0 });
  assert.equal(ok.statusCode, 204);
  assert.equal(ok.body, '');
  assert.notEqual(server.runtime.guards.list()[0]?.lastReportAtMs, undefined);

  assert.equal(server.runtime.guards.connect('rs-1', other.id, 0), undefined, 'the id is taken');
  release();
  release();
  assert.equal(server.runtime.guards.size, 0);
});

test('wait_ms: times out naming the pending guards; a receipt during the wait completes it', async (t) => {
  const { server, call, receipt } = await setup(t);
  server.runtime.guards.connect('slow', server.resourceServer.id, 0);

  const now = await call('POST', '/admin/subjects/alice/revoke?wait_ms=0', { reason: 'logout' });
  assert.deepEqual(now.json().enforcement, {
    cursor: 1,
    enforced_by: [],
    pending: ['slow'],
    timed_out: true,
  });
  const started = Date.now();
  const late = await call('POST', '/admin/subjects/bob/revoke?wait_ms=100', { reason: 'logout' });
  assert.ok(Date.now() - started >= 95);
  assert.deepEqual(late.json<{ enforcement: EnforcementBody }>().enforcement, {
    cursor: 2,
    enforced_by: [],
    pending: ['slow'],
    timed_out: true,
  });

  assertOAuthError(
    await call('POST', '/admin/sessions/nope/revoke?wait_ms=100', { reason: 'logout' }),
    404,
    'not_found',
  );
  const pending = call('POST', '/admin/clients/app/revoke?wait_ms=5000', { reason: 'compromised' });
  setTimeout(() => void receipt({ guardId: 'slow', cursor: 3 }), 30);
  const done = (await pending).json<{ cursor: number; enforcement: EnforcementBody }>();
  assert.equal(done.cursor, 3);
  assert.deepEqual(done.enforcement, { cursor: 3, enforced_by: ['slow'], pending: [], timed_out: false });

  const next = await call('POST', '/admin/revoke-all?wait_ms=0', { reason: 'key_compromise' });
  assert.deepEqual(next.json<{ enforcement: EnforcementBody }>().enforcement.pending, ['slow']);
  // Acknowledging a cursor enforces every rule before it.
  assert.equal((await receipt({ guardId: 'slow', cursor: 4 })).statusCode, 204);
  assert.deepEqual(await server.runtime.guards.waitForCursor(2, 0), {
    cursor: 2,
    enforcedBy: ['slow'],
    pending: [],
    timedOut: false,
  });
});

test('wait_ms is validated before anything is written', async (t) => {
  const { server, call } = await setup(t);
  const { access_token: token } = await server.login('carol');
  for (const query of ['wait_ms=30001', 'wait_ms=abc', 'wait_ms=', 'wait_ms=-1', 'wait_ms=1&wait_ms=2']) {
    assertOAuthError(
      await call('POST', `/admin/subjects/carol/revoke?${query}`, { reason: 'logout' }),
      400,
      'invalid_request',
    );
  }
  for (const value of ['30001', 'abc', '-1', '1.5', ['1', '2']]) {
    assertOAuthError(
      await server.form('/revoke', { token, wait_ms: value }, { authorization: server.client.basic }),
      400,
      'invalid_request',
    );
  }
  assert.equal(cursorOf(server), 0, 'nothing was written');
  assert.equal(await isActive(server, token), true);

  // No guard connected: nothing to wait for.
  const answer = await call('POST', '/admin/subjects/carol/suspend?wait_ms=30000');
  assert.deepEqual(answer.json().enforcement, { cursor: 1, enforced_by: [], pending: [], timed_out: false });
  const plain = await call('POST', '/admin/subjects/carol/revoke', { reason: 'logout' });
  assert.equal('enforcement' in plain.json(), false, 'no enforcement member without wait_ms');
});

test('RFC 7009 /revoke: empty 200 without wait_ms, JSON with it (cursor null when nothing was written)', async (t) => {
  const { server } = await setup(t);
  const first = await server.login('dave');
  const second = await server.login('dave');
  const plain = await revoke(server, first.access_token);
  assert.equal(plain.statusCode, 200);
  assert.equal(plain.body, '');

  const waited = await revoke(server, second.access_token, server.client, { wait_ms: '0' });
  assert.equal(waited.statusCode, 200);
  assert.equal(waited.headers['cache-control'], 'no-store');
  assert.deepEqual(waited.json(), {
    enforcement: { cursor: 2, enforced_by: [], pending: [], timed_out: false },
  });
  const unknown = await revoke(server, 'not-a-token', server.client, { wait_ms: '10' });
  assert.deepEqual(unknown.json(), {
    enforcement: { cursor: null, enforced_by: [], pending: [], timed_out: false },
  });
  const family = await revoke(server, second.refresh_token, server.client, { wait_ms: '10' });
  assert.equal(family.json<{ enforcement: EnforcementBody }>().enforcement.cursor, 3);
});

test('a guard that drops during a wait stays pending, and counts once it is back and caught up', async (t) => {
  const { server } = await setup(t);
  const guards = server.runtime.guards;
  const release = guards.connect('flaky', server.resourceServer.id, 0)!;
  const waiting = guards.waitForCursor(0 + 1, 5000);
  release();
  assert.equal(guards.size, 0);
  guards.connect('flaky', server.resourceServer.id, 1);
  assert.deepEqual(await waiting, { cursor: 1, enforcedBy: ['flaky'], pending: [], timedOut: false });

  const abandoned = guards.waitForCursor(2, 30_000);
  guards.releaseWaiters();
  assert.deepEqual(await abandoned, { cursor: 2, enforcedBy: [], pending: ['flaky'], timedOut: true });
});

test('lag and time-to-enforce, on a manual clock', async (t) => {
  const clock = new ManualClock();
  const { server, call, receipt } = await setup(t, clock);
  server.runtime.guards.connect('rs-a', server.resourceServer.id, 0);
  server.runtime.guards.connect('rs-b', server.resourceServer.id, 0);
  await call('POST', '/admin/subjects/erin/revoke', { reason: 'logout' });
  clock.advance(250);
  await call('POST', '/admin/claims/revoke', { claim: 'roles', value: 'admin', reason: 'role_changed' });
  clock.advance(250);

  const listed = (await call('GET', '/admin/guards')).json<{
    cursor: number;
    guards: Array<Record<string, unknown>>;
  }>();
  assert.equal(listed.cursor, 2);
  assert.deepEqual(listed.guards[0], {
    guard_id: 'rs-a',
    client_id: 'api',
    cursor: 0,
    lag_entries: 2,
    lag_ms: 500,
    connected_at: new Date(clock.nowMs() - 500).toISOString(),
    last_report_at: null,
    streams: 1,
  });
  let metrics = (await server.app.inject({ method: 'GET', url: '/metrics' })).body;
  assert.match(metrics, /^revokd_guards_connected 2$/m);
  assert.match(metrics, /^revokd_guards_max_lag_entries 2$/m);
  assert.match(metrics, /^revokd_guards_max_lag_seconds 0\.5$/m);

  assert.equal((await receipt({ guardId: 'rs-a', cursor: 1 })).statusCode, 204);
  const a = server.runtime.guards.list()[0]!;
  assert.deepEqual([a.cursor, a.lagEntries, a.lagMs, a.lastReportAtMs], [1, 1, 250, clock.nowMs()]);
  clock.advance(100);
  assert.equal((await receipt({ guardId: 'rs-a', cursor: 2 })).statusCode, 204);
  // The same cursor again observes nothing more.
  assert.equal((await receipt({ guardId: 'rs-a', cursor: 2 })).statusCode, 204);

  metrics = (await server.app.inject({ method: 'GET', url: '/metrics' })).body;
  assert.match(metrics, /^revokd_time_to_enforce_seconds_count\{kind="subject"\} 1$/m);
  assert.match(metrics, /^revokd_time_to_enforce_seconds_sum\{kind="subject"\} 0\.5$/m);
  assert.match(metrics, /^revokd_time_to_enforce_seconds_count\{kind="claim"\} 1$/m);
  assert.match(metrics, /^revokd_time_to_enforce_seconds_sum\{kind="claim"\} 0\.35$/m);
  assert.match(metrics, /^revokd_guards_max_lag_seconds 0\.6$/m, 'rs-b: the subject rule, 600 ms ago');
});

test('a real guard reports receipts; wait_ms names it; closing its stream drops it', async (t) => {
  const server = await startTestServer();
  t.after(() => {
    // A keep-alive socket left by the closed guard would hold `close()` until the server's timeouts.
    server.app.server.closeAllConnections();
    return server.close();
  });
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  const guard = createGuard({
    issuer: ISSUER,
    audience: API,
    clientId: server.resourceServer.id,
    clientSecret: server.resourceServer.secret,
    serverUrl: base,
    jwksUri: `${base}/jwks.json`,
    guardId: 'in-process',
    readyTimeoutMs: 10_000,
  });
  t.after(() => guard.close());
  await guard.ready();

  const { access_token: token } = await server.login('frank');
  const answer = await revoke(server, token, server.client, { wait_ms: '5000' });
  const { enforcement } = answer.json<{ enforcement: EnforcementBody }>();
  assert.deepEqual(enforcement, { cursor: 1, enforced_by: ['in-process'], pending: [], timed_out: false });
  const decision = guard.check(token);
  assert.equal(!decision.ok && decision.reason, 'revoked', 'enforced means applied');
  // The server counted the receipt before answering; the guard records it once the server's acknowledgement
  // of that receipt request reaches it, which may be a moment later.
  const reportedBy = Date.now() + 5000;
  while (guard.health().reportedCursor !== 1 && Date.now() < reportedBy) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(guard.health().reportedCursor, 1);
  const [listed] = server.runtime.guards.list();
  assert.deepEqual(
    [listed?.guardId, listed?.clientId, listed?.cursor, listed?.lagEntries],
    ['in-process', 'api', 1, 0],
  );

  // The same id from another client is refused on the stream.
  const other = await server.addClient('other-rs', { canIntrospect: true });
  const taken = await server.app.inject({
    method: 'GET',
    url: '/revocations/stream?after=0&guard_id=in-process',
    headers: { authorization: other.basic },
  });
  assertOAuthError(taken as unknown as InjectResult, 400, 'invalid_request');

  await guard.close();
  for (let i = 0; i < 200 && server.runtime.guards.size > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(server.runtime.guards.size, 0);
});
