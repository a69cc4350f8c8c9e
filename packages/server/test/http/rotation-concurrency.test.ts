import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestServer, type TestServer, type TokenPair } from '../support/harness.ts';
import {
  admin,
  auditOf,
  introspect,
  isActive,
  logRules,
  refresh,
  refreshOk,
  revoke,
  sessionIds,
  unrotatedTokens,
} from './helpers.ts';

const N = 50;

test(`${N} simultaneous refreshes of one token within grace all get the same successor, one chain survives`, async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const first = await server.login('alice');
  const { fid } = sessionIds(first.access_token);

  const responses = await Promise.all(Array.from({ length: N }, () => refresh(server, first.refresh_token)));
  assert.deepEqual(
    responses.map((r) => r.statusCode),
    Array(N).fill(200),
    responses.find((r) => r.statusCode !== 200)?.body,
  );
  const bodies = responses.map((r) => r.json<TokenPair>());
  const successors = new Set(bodies.map((b) => b.refresh_token));
  assert.equal(successors.size, 1, 'every caller got the same successor');
  assert.equal(new Set(bodies.map((b) => b.access_token)).size, N, 'each caller got its own access token');

  assert.equal(unrotatedTokens(server, fid), 1, 'exactly one unrotated token in the family');
  assert.equal((await logRules(server)).length, 0, 'no revocation was written');
  assert.equal((await auditOf(server, 'reuse_detected')).length, 0);
  for (const body of bodies.slice(0, 3)) assert.equal(await isActive(server, body.access_token), true);

  const [successor] = successors;
  const next = await refreshOk(server, successor!);
  assert.equal(unrotatedTokens(server, fid), 1);
  await refreshOk(server, next.refresh_token);
});

test(`with grace 0, of ${N} simultaneous refreshes exactly one wins and the rest revoke the family`, async (t) => {
  const server = await startTestServer({ config: { tokens: { refreshReuseGraceSeconds: 0 } } });
  t.after(() => server.close());
  const first = await server.login('alice');
  const other = await server.login('alice');
  const { sid, fid } = sessionIds(first.access_token);

  const responses = await Promise.all(Array.from({ length: N }, () => refresh(server, first.refresh_token)));
  const winners = responses.filter((r) => r.statusCode === 200);
  const losers = responses.filter((r) => r.statusCode !== 200);
  assert.equal(winners.length, 1);
  assert.equal(losers.length, N - 1);
  for (const loser of losers) {
    assert.equal(loser.statusCode, 400);
    assert.equal(loser.json().error, 'invalid_grant');
  }

  const winner = winners[0]!.json<TokenPair>();
  assert.equal(
    await isActive(server, winner.access_token),
    false,
    'the winner’s access token is revoked too',
  );
  assert.equal(await isActive(server, first.access_token), false);
  assert.deepEqual(await introspect(server, winner.refresh_token), { active: false });
  assert.equal((await refresh(server, winner.refresh_token)).statusCode, 400);

  const rules = (await logRules(server)).map((e) => e.rule);
  assert.ok(rules.some((r) => r.kind === 'family' && r.fid === fid));
  assert.ok(rules.some((r) => r.kind === 'session' && r.sid === sid));
  assert.ok((await auditOf(server, 'reuse_detected')).length >= 1);

  assert.equal(await isActive(server, other.access_token), true, 'another session is untouched');
});

/** After a revocation of the session raced a refresh, nothing minted from that session may be usable. */
async function assertNothingLeft(
  server: TestServer,
  pair: TokenPair,
  raced: { statusCode: number; json(): unknown },
) {
  assert.equal(await isActive(server, pair.access_token), false);
  assertRefreshDead(await refresh(server, pair.refresh_token));
  if (raced.statusCode === 200) {
    const minted = raced.json() as TokenPair;
    assert.equal(await isActive(server, minted.access_token), false, 'the access token minted by the race');
    assertRefreshDead(await refresh(server, minted.refresh_token));
    assert.deepEqual(await introspect(server, minted.refresh_token), { active: false });
  } else {
    assert.equal(raced.statusCode, 400);
  }
}

function assertRefreshDead(response: { statusCode: number; json(): unknown }) {
  assert.equal(response.statusCode, 400);
  assert.equal((response.json() as { error: string }).error, 'invalid_grant');
}

test('an admin session revocation racing a refresh is never undone by it', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const adminToken = await server.adminToken();
  for (let round = 0; round < 10; round++) {
    const pair = await server.login(`user-${round}`);
    const { sid } = sessionIds(pair.access_token);
    const revocation = admin(server, 'POST', `/admin/sessions/${sid}/revoke`, adminToken, {
      reason: 'logout',
    });
    const [revoked, raced] = await Promise.all([revocation, refresh(server, pair.refresh_token)]);
    assert.equal(revoked.statusCode, 200, revoked.body);
    await assertNothingLeft(server, pair, raced);
  }
});

test('a client revoking its refresh token while refreshing it leaves nothing of the family usable', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  for (let round = 0; round < 10; round++) {
    const pair = await server.login(`user-${round}`);
    const [revoked, raced] = await Promise.all([
      revoke(server, pair.refresh_token),
      refresh(server, pair.refresh_token),
    ]);
    assert.equal(revoked.statusCode, 200);
    await assertNothingLeft(server, pair, raced);
  }
});

test('a subject revocation racing a refresh leaves no access token of the old session active', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const adminToken = await server.adminToken();
  for (let round = 0; round < 10; round++) {
    const subject = `user-${round}`;
    const pair = await server.login(subject);
    const [revoked, raced] = await Promise.all([
      admin(server, 'POST', `/admin/subjects/${subject}/revoke`, adminToken, { reason: 'password_changed' }),
      refresh(server, pair.refresh_token),
    ]);
    assert.equal(revoked.statusCode, 200, revoked.body);
    await assertNothingLeft(server, pair, raced);
  }
});

test('a suspension racing refreshes leaves the subject with nothing usable', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const adminToken = await server.adminToken();
  for (let round = 0; round < 5; round++) {
    const subject = `user-${round}`;
    const pair = await server.login(subject);
    const [suspended, raced] = await Promise.all([
      admin(server, 'POST', `/admin/subjects/${subject}/suspend`, adminToken),
      refresh(server, pair.refresh_token),
    ]);
    assert.equal(suspended.statusCode, 200, suspended.body);
    await assertNothingLeft(server, pair, raced);
  }
});

test('a login racing a subject revocation yields a session that is wholly valid or wholly revoked', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const adminToken = await server.adminToken();
  for (let round = 0; round < 20; round++) {
    const subject = `racer-${round}`;
    const [revoked, pair] = await Promise.all([
      admin(server, 'POST', `/admin/subjects/${subject}/revoke`, adminToken, { reason: 'password_changed' }),
      server.login(subject),
    ]);
    assert.equal(revoked.statusCode, 200, revoked.body);
    const accessActive = await isActive(server, pair.access_token);
    const refreshed = await refresh(server, pair.refresh_token);
    // A session logged into after the rule keeps both tokens; one from before loses both. Never one of the two.
    assert.equal(
      refreshed.statusCode === 200,
      accessActive,
      `round ${round}: access ${accessActive}, refresh ${refreshed.body}`,
    );
  }
});
