import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeJwt } from 'jose';
import { ADMIN_AUDIENCE, GRANT_TYPES } from '../../src/config/schema.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { type InjectResult, startTestServer, type TestServer, type TokenPair } from '../support/harness.ts';
import {
  admin,
  assertOAuthError,
  clientCredentials,
  isActive,
  logRules,
  refresh,
  refreshOk,
  SUBJECT_TOKEN_TYPE,
  sessionIds,
  TOKEN_EXCHANGE,
} from './helpers.ts';

interface RevokedBody {
  rules: Array<{ cursor: number; rule: Record<string, unknown> }>;
  cursor: number;
}

async function setup(options: { clock?: ManualClock; notBeforeMarginMs?: number } = {}) {
  const server = await startTestServer({
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.notBeforeMarginMs !== undefined
      ? { config: { tokens: { notBeforeMarginMs: options.notBeforeMarginMs } } }
      : {}),
  });
  const token = await server.adminToken();
  const call = (method: 'GET' | 'POST', url: string, body?: unknown) =>
    admin(server, method, url, token, body);
  return { server, token, call };
}

async function loginFails(server: TestServer, subject: string) {
  const response = await server.form(
    '/token',
    { grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: SUBJECT_TOKEN_TYPE },
    { authorization: server.client.basic },
  );
  assertOAuthError(response, 400, 'invalid_grant');
}

test('revoking a subject writes one rule however many tokens it holds, and rejects them all', async (t) => {
  const { server, call } = await setup();
  t.after(() => server.close());
  const pairs: TokenPair[] = [];
  for (let i = 0; i < 5; i++) pairs.push(await server.login('alice'));
  const refreshed = await refreshOk(server, pairs[0]!.refresh_token);
  const bob = await server.login('bob');

  const response = await call('POST', '/admin/subjects/alice/revoke', { reason: 'password_changed' });
  assert.equal(response.statusCode, 200, response.body);
  const body = response.json<RevokedBody>();
  assert.equal(body.rules.length, 1);
  assert.equal(body.rules[0]!.rule.kind, 'subject');
  assert.equal(body.rules[0]!.rule.sub, 'alice');
  assert.equal(body.cursor, body.rules[0]!.cursor);
  assert.equal((await logRules(server)).length, 1, 'one rule in the log');

  for (const pair of [...pairs, refreshed]) {
    assert.equal(await isActive(server, pair.access_token), false);
    assertOAuthError(await refresh(server, pair.refresh_token), 400, 'invalid_grant');
  }
  assert.equal(await isActive(server, bob.access_token), true);
});

test('a token issued right after a subject revocation, in the same second, is active', async (t) => {
  // The clock does not move at all: the login happens in the very millisecond of the rule.
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0, 500));
  const { server, call } = await setup({ clock });
  t.after(() => server.close());
  const before = await server.login('alice');
  const revoked = (
    await call('POST', '/admin/subjects/alice/revoke', { reason: 'password_changed' })
  ).json<RevokedBody>();
  const after = await server.login('alice');
  const ruleSecond = Math.floor((revoked.rules[0]!.rule.notBeforeUs as number) / 1_000_000);
  assert.equal(decodeJwt(after.access_token).iat, ruleSecond, 'same second as the rule');
  assert.equal(decodeJwt(before.access_token).iat, ruleSecond, 'the revoked token too');
  assert.equal(await isActive(server, before.access_token), false);
  assert.equal(await isActive(server, after.access_token), true);
  const next = await refreshOk(server, after.refresh_token);
  assert.equal(await isActive(server, next.access_token), true);
});

test('with a not-before margin (cluster mode), a token issued just before the rule on a clock running ahead is revoked; a login right after is active', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0, 500));
  const { server, call } = await setup({ clock, notBeforeMarginMs: 100 });
  t.after(() => server.close());
  // Another node whose clock runs 60 ms ahead issued this token a moment before the revocation.
  clock.advance(60);
  const aheadOfTheRule = await server.login('alice');
  clock.advance(-60);
  const revoked = (
    await call('POST', '/admin/subjects/alice/revoke', { reason: 'password_changed' })
  ).json<RevokedBody>();
  assert.equal(
    revoked.rules[0]!.rule.notBeforeUs,
    (clock.nowMs() + 100) * 1000,
    'wall clock plus the margin',
  );
  const after = await server.login('alice');
  assert.equal(await isActive(server, aheadOfTheRule.access_token), false);
  assert.equal(
    await isActive(server, after.access_token),
    true,
    'the node that wrote the rule issues after it',
  );
  // A second rule is again wall clock + margin: rules do not ratchet the clock forward.
  const again = (
    await call('POST', '/admin/subjects/bob/revoke', { reason: 'password_changed' })
  ).json<RevokedBody>();
  const secondUs = again.rules[0]!.rule.notBeforeUs as number;
  assert.ok(secondUs < (clock.nowMs() + 101) * 1000, `${secondUs} is within a millisecond of wall + margin`);
});

test('a suspended subject cannot log in or refresh; after reinstatement it logs in, old tokens stay revoked', async (t) => {
  const { server, call } = await setup();
  t.after(() => server.close());
  const old = await server.login('mallory');

  const suspended = await call('POST', '/admin/subjects/mallory/suspend');
  assert.equal(suspended.statusCode, 200, suspended.body);
  const body = suspended.json<RevokedBody>();
  assert.equal(body.rules.length, 1);
  assert.equal(body.rules[0]!.rule.kind, 'subject');
  const listing = (await call('GET', '/admin/subjects/mallory/sessions')).json<{ suspended: boolean }>();
  assert.equal(listing.suspended, true);

  await loginFails(server, 'mallory');
  assertOAuthError(await refresh(server, old.refresh_token), 400, 'invalid_grant');
  assert.equal(await isActive(server, old.access_token), false);

  const reinstated = await call('POST', '/admin/subjects/mallory/reinstate');
  assert.equal(reinstated.statusCode, 200);
  assert.deepEqual(reinstated.json(), { reinstated: true });
  assert.deepEqual((await call('POST', '/admin/subjects/mallory/reinstate')).json(), { reinstated: false });
  assert.equal(
    (await call('GET', '/admin/subjects/mallory/sessions')).json<{ suspended: boolean }>().suspended,
    false,
  );

  const fresh = await server.login('mallory');
  assert.equal(await isActive(server, fresh.access_token), true);
  await refreshOk(server, fresh.refresh_token);
  assert.equal(await isActive(server, old.access_token), false, 'old tokens stay revoked');
  assertOAuthError(await refresh(server, old.refresh_token), 400, 'invalid_grant');
});

test('revoking a session rejects its tokens and leaves the subject’s other sessions alone', async (t) => {
  const { server, call } = await setup();
  t.after(() => server.close());
  const target = await server.login('alice');
  const other = await server.login('alice');
  const { sid } = sessionIds(target.access_token);
  const response = await call('POST', `/admin/sessions/${sid}/revoke`, { reason: 'logout' });
  assert.equal(response.statusCode, 200, response.body);
  const rules = response.json<RevokedBody>().rules.map((e) => e.rule);
  assert.deepEqual(
    rules.map((r) => [r.kind, r.sid]),
    [['session', sid]],
  );
  assert.equal(await isActive(server, target.access_token), false);
  assertOAuthError(await refresh(server, target.refresh_token), 400, 'invalid_grant');
  assert.equal(await isActive(server, other.access_token), true);
  await refreshOk(server, other.refresh_token);
});

test('revoking an unknown session is 404 not_found and writes nothing', async (t) => {
  const { server, call } = await setup();
  t.after(() => server.close());
  const response = await call('POST', '/admin/sessions/no-such-session/revoke', { reason: 'logout' });
  assertOAuthError(response, 404, 'not_found');
  assert.deepEqual(await logRules(server), []);
});

test('revoking a client rejects every token it was issued before, and none of other clients', async (t) => {
  const { server, call } = await setup();
  t.after(() => server.close());
  const machine = await clientCredentials(server);
  const user = await server.login('alice');
  const others = await clientCredentials(server, server.resourceServer);
  const response = await call('POST', `/admin/clients/${server.client.id}/revoke`, { reason: 'compromised' });
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(response.json<RevokedBody>().rules[0]!.rule.kind, 'client');
  assert.equal(await isActive(server, machine), false);
  assert.equal(await isActive(server, user.access_token), false);
  assertOAuthError(await refresh(server, user.refresh_token), 400, 'invalid_grant');
  assert.equal(await isActive(server, others), true);
  assert.equal(
    await isActive(server, await clientCredentials(server)),
    true,
    'a new token of the client works',
  );
});

test('a claim rule rejects earlier tokens carrying the value, and no others', async (t) => {
  const { server, call } = await setup();
  t.after(() => server.close());
  const adminArray = await server.login('alice', { claims: { roles: ['editor', 'admin'] } });
  const adminString = await server.login('bob', { claims: { roles: 'admin' } });
  const editor = await server.login('carol', { claims: { roles: ['editor'] } });
  const superadmin = await server.login('dave', { claims: { roles: ['superadmin'] } });
  const plain = await clientCredentials(server);

  const response = await call('POST', '/admin/claims/revoke', {
    claim: 'roles',
    value: 'admin',
    reason: 'role_changed',
  });
  assert.equal(response.statusCode, 200, response.body);
  assert.deepEqual(
    { ...response.json<RevokedBody>().rules[0]!.rule, notBeforeUs: 0, expiresAtMs: 0 },
    { kind: 'claim', claim: 'roles', value: 'admin', notBeforeUs: 0, expiresAtMs: 0 },
  );

  assert.equal(await isActive(server, adminArray.access_token), false);
  assert.equal(await isActive(server, adminString.access_token), false);
  assertOAuthError(await refresh(server, adminArray.refresh_token), 400, 'invalid_grant');
  assertOAuthError(await refresh(server, adminString.refresh_token), 400, 'invalid_grant');

  assert.equal(await isActive(server, editor.access_token), true);
  assert.equal(await isActive(server, superadmin.access_token), true);
  assert.equal(await isActive(server, plain), true);
  await refreshOk(server, editor.refresh_token);

  const after = await server.login('alice', { claims: { roles: ['admin'] } });
  assert.equal(await isActive(server, after.access_token), true, 'issued after the rule');
});

test('revoke-all rejects every token issued before it, the admin’s own included', async (t) => {
  const { server, call } = await setup();
  t.after(() => server.close());
  const machine = await clientCredentials(server);
  const user = await server.login('alice');
  const response = await call('POST', '/admin/revoke-all', { reason: 'key_compromise' });
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(response.json<RevokedBody>().rules[0]!.rule.kind, 'global');
  assert.equal(await isActive(server, machine), false);
  assert.equal(await isActive(server, user.access_token), false);
  assertOAuthError(await refresh(server, user.refresh_token), 400, 'invalid_grant');

  const stale = await call('GET', '/admin/audit');
  assertOAuthError(stale, 401, 'invalid_token');
  const fresh = await admin(server, 'GET', '/admin/audit', await server.adminToken());
  assert.equal(fresh.statusCode, 200);
  assert.equal(await isActive(server, (await server.login('alice')).access_token), true);
});

test('listing sessions shows live sessions, and ended ones on request with the reason', async (t) => {
  const clock = new ManualClock();
  const { server, call } = await setup({ clock });
  t.after(() => server.close());
  const live = await server.login('alice', { scope: 'read' });
  const ended = await server.login('alice');
  await server.login('bob');
  const endedSid = sessionIds(ended.access_token).sid;
  await call('POST', `/admin/sessions/${endedSid}/revoke`, { reason: 'logout' });

  const response = await call('GET', '/admin/subjects/alice/sessions');
  assert.equal(response.statusCode, 200);
  const at = new Date(clock.nowMs()).toISOString();
  assert.deepEqual(response.json(), {
    subject: 'alice',
    suspended: false,
    sessions: [
      {
        sid: sessionIds(live.access_token).sid,
        client_id: server.client.id,
        scope: 'read',
        created_at: at,
        last_used_at: at,
        expires_at: new Date(clock.nowMs() + 30 * 86_400_000).toISOString(),
        ended_at: null,
        end_reason: null,
      },
    ],
  });

  const all = await call('GET', '/admin/subjects/alice/sessions?include_ended=true');
  const sessions = all.json<{
    sessions: Array<{ sid: string; ended_at: string | null; end_reason: string | null }>;
  }>().sessions;
  assert.equal(sessions.length, 2);
  const endedView = sessions.find((s) => s.sid === endedSid);
  assert.equal(endedView?.ended_at, at);
  assert.equal(endedView?.end_reason, 'logout');

  const nobody = await call('GET', '/admin/subjects/nobody/sessions');
  assert.deepEqual(nobody.json(), { subject: 'nobody', suspended: false, sessions: [] });
});

test('the audit log records issued, refreshed, revoked (reason, actor), reuse_detected and introspected', async (t) => {
  const clock = new ManualClock();
  const { server, call } = await setup({ clock });
  t.after(() => server.close());
  const pair = await server.login('alice');
  const { sid } = sessionIds(pair.access_token);
  const next = await refreshOk(server, pair.refresh_token);
  await server.form(
    '/introspect',
    { token: next.access_token },
    { authorization: server.resourceServer.basic },
  );
  clock.advance(11_000);
  await refresh(server, pair.refresh_token); // reuse
  await call('POST', '/admin/subjects/alice/revoke', { reason: 'password_changed' });

  const response = await call('GET', '/admin/audit?subject=alice');
  assert.equal(response.statusCode, 200);
  const { events, next: cursor } = response.json<{
    events: Array<{
      id: number;
      type: string;
      actor: string;
      reason?: string;
      sid?: string;
      detail?: unknown;
    }>;
    next: number;
  }>();
  const types = events.map((e) => e.type);
  for (const type of ['session_opened', 'issued', 'refreshed', 'introspected', 'reuse_detected', 'revoked']) {
    assert.ok(types.includes(type), `${type} in ${types.join(',')}`);
  }
  assert.equal(cursor, events.at(-1)!.id);
  const reuseRevocation = events.find((e) => e.type === 'revoked' && e.reason === 'refresh_token_reuse');
  assert.equal(reuseRevocation?.sid, sid);
  const adminRevocation = events.find((e) => e.type === 'revoked' && e.reason === 'password_changed');
  assert.ok(adminRevocation);
  assert.equal(adminRevocation.actor, 'admin:ops');

  const onlyReuse = (await call('GET', '/admin/audit?type=reuse_detected')).json<{
    events: Array<{ type: string }>;
  }>();
  assert.deepEqual(
    onlyReuse.events.map((e) => e.type),
    ['reuse_detected'],
  );

  // Paging: `after` continues where `next` left off.
  const page1 = (await call('GET', '/admin/audit?limit=2')).json<{
    events: Array<{ id: number }>;
    next: number;
  }>();
  assert.equal(page1.events.length, 2);
  const page2 = (await call('GET', `/admin/audit?limit=2&after=${page1.next}`)).json<{
    events: Array<{ id: number }>;
  }>();
  assert.ok(page2.events[0]!.id > page1.next);
});

test('without a valid Bearer token the admin API answers 401 with a Bearer challenge', async (t) => {
  const { server } = await setup();
  t.after(() => server.close());
  for (const authorization of [undefined, 'Bearer', 'Bearer ', 'bearer abc', 'Basic YTpi', 'Bearer a b']) {
    const response = await server.app.inject({
      method: 'POST',
      url: '/admin/revoke-all',
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      payload: JSON.stringify({ reason: 'administrative' }),
    });
    assertOAuthError(response as unknown as InjectResult, 401, 'invalid_token');
    // RFC 6750 §3.1: no credentials at all → a bare challenge; malformed ones name the error.
    assert.match(
      String(response.headers['www-authenticate']),
      authorization === undefined
        ? /^Bearer realm="revokd"$/
        : /^Bearer realm="revokd", error="invalid_token", error_description="[^"]+"$/,
    );
  }
  assert.deepEqual(await logRules(server), []);
});

test('a token not meant for the admin API is 401; one without the admin scope is 403', async (t) => {
  const { server } = await setup();
  t.after(() => server.close());
  const apiToken = await clientCredentials(server);
  const wrongAudience = await admin(server, 'POST', '/admin/revoke-all', apiToken, {
    reason: 'administrative',
  });
  assertOAuthError(wrongAudience, 401, 'invalid_token');

  const reader = await server.addClient('reader', {
    grants: [GRANT_TYPES.clientCredentials],
    audiences: [ADMIN_AUDIENCE],
    scopes: ['read'],
  });
  const noScope = await admin(server, 'POST', '/admin/revoke-all', await clientCredentials(server, reader), {
    reason: 'administrative',
  });
  assertOAuthError(noScope, 403, 'insufficient_scope');
  assert.match(
    String(noScope.headers['www-authenticate']),
    /^Bearer realm="revokd", error="insufficient_scope"/,
  );

  const userToken = (await server.login('alice')).access_token;
  assertOAuthError(await admin(server, 'GET', '/admin/audit', userToken), 401, 'invalid_token');
  assert.deepEqual(await logRules(server), []);
});

test('an expired admin token is 401 invalid_token', async (t) => {
  const clock = new ManualClock();
  const { server, call } = await setup({ clock });
  t.after(() => server.close());
  assert.equal((await call('GET', '/admin/audit')).statusCode, 200);
  clock.advance(300_000);
  assertOAuthError(await call('GET', '/admin/audit'), 401, 'invalid_token');
});

test('invalid admin bodies and queries are 400 invalid_request and write nothing', async (t) => {
  const { server, call } = await setup();
  t.after(() => server.close());
  const cases: Array<[string, string, unknown]> = [
    ['POST', '/admin/subjects/alice/revoke', { reason: 'because' }],
    ['POST', '/admin/subjects/alice/revoke', {}],
    ['POST', '/admin/subjects/alice/revoke', undefined],
    ['POST', '/admin/subjects/alice/revoke', { reason: 'logout', extra: true }],
    ['POST', '/admin/subjects/alice/revoke', { reason: ['logout'] }],
    ['POST', '/admin/subjects/alice/revoke', '[]'],
    ['POST', '/admin/subjects/alice/revoke', '"logout"'],
    ['POST', `/admin/subjects/${'a'.repeat(256)}/revoke`, { reason: 'logout' }],
    ['POST', '/admin/sessions/abc/revoke', { reason: 'nope' }],
    ['POST', '/admin/clients/app/revoke', { reason: '' }],
    ['POST', '/admin/revoke-all', { reason: 'LOGOUT' }],
    ['POST', '/admin/claims/revoke', { claim: 'roles', value: 'admin' }],
    ['POST', '/admin/claims/revoke', { claim: '1roles', value: 'admin', reason: 'role_changed' }],
    ['POST', '/admin/claims/revoke', { claim: 'roles', value: '', reason: 'role_changed' }],
    ['POST', '/admin/claims/revoke', { claim: 'roles', value: 7, reason: 'role_changed' }],
    ['GET', '/admin/audit?limit=0', undefined],
    ['GET', '/admin/audit?limit=1001', undefined],
    ['GET', '/admin/audit?after=-1', undefined],
    ['GET', '/admin/audit?unknown=1', undefined],
    ['GET', '/admin/subjects/alice/sessions?include_ended=yes', undefined],
  ];
  for (const [method, url, body] of cases) {
    const response = await call(method as 'GET' | 'POST', url, body);
    assertOAuthError(response, 400, 'invalid_request');
  }
  assert.deepEqual(await logRules(server), []);
});
