import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeJwt } from 'jose';
import type { ConfigInput } from '../../src/config/schema.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { startTestServer } from '../support/harness.ts';
import {
  admin,
  assertOAuthError,
  auditOf,
  introspect,
  isActive,
  logRules,
  refresh,
  refreshOk,
  revoke,
  SUBJECT_TOKEN_TYPE,
  sessionIds,
  TOKEN_EXCHANGE,
  unrotatedTokens,
} from './helpers.ts';

const SECOND = 1000;

async function start(tokens: NonNullable<ConfigInput['tokens']> = {}) {
  const clock = new ManualClock();
  const server = await startTestServer({ clock, config: { tokens } });
  return { server, clock };
}

test('a refresh rotates: a new refresh token and a new access token of the same session and family', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  const first = await server.login('alice');
  const response = await refresh(server, first.refresh_token);
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(response.headers['cache-control'], 'no-store');
  const next = response.json<{
    access_token: string;
    refresh_token: string;
    token_type: string;
    expires_in: number;
    scope: string;
  }>();
  assert.deepEqual(Object.keys(next).sort(), [
    'access_token',
    'expires_in',
    'refresh_token',
    'scope',
    'token_type',
  ]);
  assert.equal(next.token_type, 'Bearer');
  assert.equal(next.scope, 'read write');
  assert.notEqual(next.refresh_token, first.refresh_token);
  assert.notEqual(next.access_token, first.access_token);
  assert.deepEqual(sessionIds(next.access_token), sessionIds(first.access_token));
  assert.equal(decodeJwt(next.access_token).sub, 'alice');
  // The successor works, and so does its successor.
  await refreshOk(server, (await refreshOk(server, next.refresh_token)).refresh_token);
});

test('session claims are carried into every access token minted by refresh', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  const first = await server.login('alice', { claims: { roles: ['editor', 'viewer'] } });
  const next = await refreshOk(server, first.refresh_token);
  assert.deepEqual(decodeJwt(next.access_token).roles, ['editor', 'viewer']);
});

test('the rotated refresh token stops working once the grace period has passed', async (t) => {
  const { server, clock } = await start();
  t.after(() => server.close());
  const first = await server.login('alice');
  await refreshOk(server, first.refresh_token);
  clock.advance(11 * SECOND);
  assertOAuthError(await refresh(server, first.refresh_token), 400, 'invalid_grant');
  assert.deepEqual(await introspect(server, first.refresh_token), { active: false });
});

test('reuse after the grace period revokes the family and the session: their access tokens become inactive', async (t) => {
  const { server, clock } = await start();
  t.after(() => server.close());
  const first = await server.login('alice');
  const other = await server.login('alice'); // another session of the same user
  const second = await refreshOk(server, first.refresh_token);
  assert.equal(await isActive(server, first.access_token), true);
  assert.equal(await isActive(server, second.access_token), true);

  clock.advance(11 * SECOND);
  const reuse = await refresh(server, first.refresh_token);
  const body = assertOAuthError(reuse, 400, 'invalid_grant');
  assert.match(body.error_description, /already used/);

  assert.equal(await isActive(server, first.access_token), false);
  assert.equal(await isActive(server, second.access_token), false);
  assertOAuthError(await refresh(server, second.refresh_token), 400, 'invalid_grant');
  assert.deepEqual(await introspect(server, second.refresh_token), { active: false });

  const { sid, fid } = sessionIds(first.access_token);
  const rules = (await logRules(server)).map((e) => e.rule);
  assert.ok(rules.some((r) => r.kind === 'family' && r.fid === fid));
  assert.ok(rules.some((r) => r.kind === 'session' && r.sid === sid));
  const reuseEvents = await auditOf(server, 'reuse_detected');
  assert.equal(reuseEvents.length, 1);
  assert.equal(reuseEvents[0]!.sid, sid);

  // The user's other session is untouched.
  assert.equal(await isActive(server, other.access_token), true);
  await refreshOk(server, other.refresh_token);
});

test('within the grace period the parent returns the same successor: idempotent replay, no fork', async (t) => {
  const { server, clock } = await start();
  t.after(() => server.close());
  const first = await server.login('alice');
  const { fid } = sessionIds(first.access_token);
  const a = await refreshOk(server, first.refresh_token);
  clock.advance(5 * SECOND);
  const b = await refreshOk(server, first.refresh_token);
  assert.equal(b.refresh_token, a.refresh_token, 'the same successor');
  assert.notEqual(b.access_token, a.access_token, 'a fresh access token each time');
  assert.deepEqual(sessionIds(b.access_token), sessionIds(a.access_token));
  assert.equal(unrotatedTokens(server, fid), 1, 'exactly one surviving chain');
  assert.equal(await isActive(server, a.access_token), true);
  assert.equal((await logRules(server)).length, 0, 'a replay is not reuse');
  const replays = (await auditOf(server, 'refreshed')).filter((e) => e.detail?.replay === true);
  assert.equal(replays.length, 1);
  await refreshOk(server, a.refresh_token);
});

test('within the grace period a grandparent is still reuse', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  const first = await server.login('alice');
  const second = await refreshOk(server, first.refresh_token);
  const third = await refreshOk(server, second.refresh_token);
  assertOAuthError(await refresh(server, first.refresh_token), 400, 'invalid_grant');
  assert.equal(await isActive(server, third.access_token), false);
  assertOAuthError(await refresh(server, third.refresh_token), 400, 'invalid_grant');
});

test('after two rotations within grace, the head’s parent still replays while the older token is reuse', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  const first = await server.login('alice');
  const second = await refreshOk(server, first.refresh_token);
  await refreshOk(server, second.refresh_token);
  // `second` is now the parent of the head, and its own parent is `first`: presenting `second` again is a replay
  // of the immediate parent, and `first` is older.
  assert.equal((await refresh(server, second.refresh_token)).statusCode, 200);
  assertOAuthError(await refresh(server, first.refresh_token), 400, 'invalid_grant');
});

test('with the grace period disabled (0), presenting a rotated token at once is reuse', async (t) => {
  const { server } = await start({ refreshReuseGraceSeconds: 0 });
  t.after(() => server.close());
  const first = await server.login('alice');
  const second = await refreshOk(server, first.refresh_token);
  assertOAuthError(await refresh(server, first.refresh_token), 400, 'invalid_grant');
  assert.equal(await isActive(server, second.access_token), false);
  assertOAuthError(await refresh(server, second.refresh_token), 400, 'invalid_grant');
  assert.equal((await auditOf(server, 'reuse_detected')).length, 1);
});

test('another client’s refresh token is invalid_grant and revokes nothing', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  const thief = await server.addClient('thief');
  const first = await server.login('alice');
  const response = await refresh(server, first.refresh_token, thief);
  assertOAuthError(response, 400, 'invalid_grant');
  assert.equal((await logRules(server)).length, 0);
  assert.equal(await isActive(server, first.access_token), true);
  assert.equal((await auditOf(server, 'reuse_detected')).length, 0);
  await refreshOk(server, first.refresh_token);
});

test('an unknown, oversized, empty or missing refresh token is rejected', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  assertOAuthError(await refresh(server, 'no-such-token'), 400, 'invalid_grant');
  assertOAuthError(await refresh(server, 'x'.repeat(513)), 400, 'invalid_grant');
  assertOAuthError(await refresh(server, ''), 400, 'invalid_request');
  assertOAuthError(
    await server.form('/token', { grant_type: 'refresh_token' }, { authorization: server.client.basic }),
    400,
    'invalid_request',
  );
});

test('a session idle longer than refreshIdleTtlSeconds cannot refresh; each refresh resets the idle clock', async (t) => {
  const { server, clock } = await start({ refreshIdleTtlSeconds: 60, refreshAbsoluteTtlSeconds: 600 });
  t.after(() => server.close());
  let pair = await server.login('alice');
  clock.advance(59 * SECOND);
  pair = await refreshOk(server, pair.refresh_token);
  clock.advance(59 * SECOND);
  pair = await refreshOk(server, pair.refresh_token);
  clock.advance(60 * SECOND);
  assert.deepEqual(await introspect(server, pair.refresh_token), { active: false });
  const body = assertOAuthError(await refresh(server, pair.refresh_token), 400, 'invalid_grant');
  assert.match(body.error_description, /idle/);
});

test('a session ends at its absolute lifetime however active it is', async (t) => {
  const { server, clock } = await start({ refreshIdleTtlSeconds: 60, refreshAbsoluteTtlSeconds: 300 });
  t.after(() => server.close());
  let pair = await server.login('alice');
  for (let elapsed = 50; elapsed < 300; elapsed += 50) {
    clock.advance(50 * SECOND);
    pair = await refreshOk(server, pair.refresh_token);
  }
  clock.advance(50 * SECOND); // 300 s after login
  const body = assertOAuthError(await refresh(server, pair.refresh_token), 400, 'invalid_grant');
  assert.match(body.error_description, /absolute lifetime/);
});

test('a refresh may narrow the scope; omitting it returns the session’s full scope', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  const first = await server.login('alice');
  const narrowed = await refresh(server, first.refresh_token, server.client, { scope: 'read' });
  assert.equal(narrowed.statusCode, 200, narrowed.body);
  const body = narrowed.json<{ scope: string; access_token: string; refresh_token: string }>();
  assert.equal(body.scope, 'read');
  assert.equal(decodeJwt(body.access_token).scope, 'read');
  const full = await refreshOk(server, body.refresh_token);
  assert.equal(full.scope, 'read write');
});

test('a refresh asking for a wider scope is invalid_scope and leaves the refresh token usable', async (t) => {
  const { server, clock } = await start();
  t.after(() => server.close());
  const narrow = await server.login('alice', { scope: 'read' });
  for (const scope of ['read write', 'write', 'admin']) {
    assertOAuthError(
      await refresh(server, narrow.refresh_token, server.client, { scope }),
      400,
      'invalid_scope',
    );
  }
  // A rejected request must not have consumed the token: well past the grace period it still refreshes.
  clock.advance(60 * SECOND);
  const next = await refreshOk(server, narrow.refresh_token);
  assert.equal(next.scope, 'read');
  assert.equal(await isActive(server, narrow.access_token), true);
  assert.equal((await auditOf(server, 'reuse_detected')).length, 0);
});

test('a suspended subject can neither refresh nor log in', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  const adminToken = await server.adminToken();
  const pair = await server.login('mallory');
  const suspended = await admin(server, 'POST', '/admin/subjects/mallory/suspend', adminToken);
  assert.equal(suspended.statusCode, 200, suspended.body);

  assertOAuthError(await refresh(server, pair.refresh_token), 400, 'invalid_grant');
  const login = await server.form(
    '/token',
    { grant_type: TOKEN_EXCHANGE, subject_token: 'mallory', subject_token_type: SUBJECT_TOKEN_TYPE },
    { authorization: server.client.basic },
  );
  const body = assertOAuthError(login, 400, 'invalid_grant');
  assert.match(body.error_description, /suspended/);
  assert.equal(await isActive(server, pair.access_token), false);
  // Others are unaffected.
  await server.login('alice');
});

test('a refresh token revoked through /revoke cannot refresh', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  const pair = await server.login('alice');
  assert.equal((await revoke(server, pair.refresh_token)).statusCode, 200);
  assertOAuthError(await refresh(server, pair.refresh_token), 400, 'invalid_grant');
});

test('refreshes are recorded in the audit log with the family', async (t) => {
  const { server } = await start();
  t.after(() => server.close());
  const pair = await server.login('alice');
  await refreshOk(server, pair.refresh_token);
  const { sid, fid } = sessionIds(pair.access_token);
  const events = await auditOf(server, 'refreshed');
  assert.equal(events.length, 1);
  assert.equal(events[0]!.sid, sid);
  assert.equal(events[0]!.subject, 'alice');
  assert.deepEqual(events[0]!.detail, { fid });
});
