import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { ManualClock } from '../../src/core/clock.ts';
import { startTestServer, type TestServer } from '../support/harness.ts';
import {
  admin,
  assertOAuthError,
  auditOf,
  clientCredentials,
  introspect,
  isActive,
  logRules,
  refresh,
  refreshOk,
  revoke,
  sessionIds,
} from './helpers.ts';

/** Asserts the 200 of RFC 7009 §2.2, with no-store. */
function assertRevokeOk(response: { statusCode: number; headers: Record<string, unknown>; body: string }) {
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(response.headers['cache-control'], 'no-store');
  assert.equal(response.body, '');
}

async function assertNoRuleWritten(server: TestServer) {
  assert.deepEqual(await logRules(server), []);
  assert.equal(server.runtime.revocation.index.size, 0);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

test('revoking an access token makes it inactive with one token rule that expires with the token', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  const other = await clientCredentials(server);
  assertRevokeOk(await revoke(server, token));
  assert.equal(await isActive(server, token), false);
  assert.equal(await isActive(server, other), true, 'only that token');

  const { jti, exp } = decodeJwt(token);
  const entries = await logRules(server);
  assert.equal(entries.length, 1);
  assert.deepEqual(entries[0]!.rule, { kind: 'token', jti, expiresAtMs: exp! * 1000 + 30_000 });

  const [event] = (await auditOf(server, 'revoked')).filter((e) => e.jti === jti);
  assert.ok(event);
  assert.equal(event.reason, 'client_request');
  assert.equal(event.actor, server.client.id);
});

test('revoking an already revoked access token is 200 again and it stays one active entry', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  assertRevokeOk(await revoke(server, token));
  assertRevokeOk(await revoke(server, token));
  assert.equal(server.runtime.revocation.index.size, 1, 'one active entry for that jti');
});

test('revoking a refresh token revokes its family and every access token issued from it', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const first = await server.login('alice');
  const second = await refreshOk(server, first.refresh_token);
  const otherSession = await server.login('alice');

  assertRevokeOk(await revoke(server, second.refresh_token));
  assert.equal(await isActive(server, first.access_token), false);
  assert.equal(await isActive(server, second.access_token), false);
  assertOAuthError(await refresh(server, second.refresh_token), 400, 'invalid_grant');
  assertOAuthError(await refresh(server, first.refresh_token), 400, 'invalid_grant');
  assert.deepEqual(await introspect(server, second.refresh_token), { active: false });

  const { fid } = sessionIds(first.access_token);
  const rules = (await logRules(server)).map((e) => e.rule);
  assert.equal(rules.length, 1);
  assert.equal(rules[0]!.kind, 'family');
  assert.equal(rules[0]!.kind === 'family' && rules[0]!.fid, fid);

  assert.equal(await isActive(server, otherSession.access_token), true);
  await refreshOk(server, otherSession.refresh_token);

  // Revoking it again changes nothing.
  assertRevokeOk(await revoke(server, second.refresh_token));
  assert.equal((await logRules(server)).length, 1);
});

test('revoking the refresh token ends its session in the admin listing', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const pair = await server.login('alice');
  assertRevokeOk(await revoke(server, pair.refresh_token));
  const listing = await admin(server, 'GET', '/admin/subjects/alice/sessions', await server.adminToken());
  assert.deepEqual(listing.json<{ sessions: unknown[] }>().sessions, []);
});

test('an unknown or garbage token is answered 200 and writes nothing', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  for (const token of ['no-such-token', 'a.b.c', '...', 'eyJhbGciOiJub25lIn0.e30.', 'x'.repeat(8192)]) {
    assertRevokeOk(await revoke(server, token));
  }
  await assertNoRuleWritten(server);
});

test('a JWT signed by a key that is not ours, carrying a real jti and our kid, is 200 and writes no rule', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const victim = await clientCredentials(server);
  const claims = decodeJwt(victim);
  const { kid } = decodeProtectedHeader(victim);
  const { privateKey } = await generateKeyPair('EdDSA');
  const forged = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid: kid!, typ: 'at+jwt' })
    .sign(privateKey);
  assertRevokeOk(await revoke(server, forged));
  await assertNoRuleWritten(server);
  assert.equal(await isActive(server, victim), true);
});

test('a real token with a tampered payload is 200 and writes no rule', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const mine = await clientCredentials(server);
  const victim = await clientCredentials(server);
  const [header, , signature] = mine.split('.');
  const tampered = `${header}.${b64url({ ...decodeJwt(mine), jti: decodeJwt(victim).jti })}.${signature}`;
  assertRevokeOk(await revoke(server, tampered));
  await assertNoRuleWritten(server);
  assert.equal(await isActive(server, victim), true);
  assert.equal(await isActive(server, mine), true);
});

test('a token signed with our key but a foreign issuer or the wrong typ is 200 and writes no rule', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const claims = decodeJwt(await clientCredentials(server));
  const foreign = await server.runtime.keyring.sign({ ...claims, iss: 'https://evil.example' }, 'at+jwt');
  const plainJwt = await server.runtime.keyring.sign(claims, 'JWT');
  for (const token of [foreign, plainJwt]) assertRevokeOk(await revoke(server, token));
  await assertNoRuleWritten(server);
});

test('another client’s valid access token is refused with 400 unauthorized_client and not revoked', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const stranger = await server.addClient('stranger');
  const token = await clientCredentials(server);
  const response = await revoke(server, token, stranger);
  const body = assertOAuthError(response, 400, 'unauthorized_client');
  assert.equal(body.error_description, 'the token was not issued to this client');
  assert.equal(await isActive(server, token), true);
  await assertNoRuleWritten(server);
});

test('another client’s refresh token is refused with 400 unauthorized_client and keeps working', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const stranger = await server.addClient('stranger');
  const pair = await server.login('alice');
  assertOAuthError(await revoke(server, pair.refresh_token, stranger), 400, 'unauthorized_client');
  await assertNoRuleWritten(server);
  assert.equal(await isActive(server, pair.access_token), true);
  await refreshOk(server, pair.refresh_token);
});

test('token_type_hint is a hint: a wrong or unknown hint still finds the token', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const cases: Array<[string, 'access' | 'refresh']> = [
    ['access_token', 'access'],
    ['refresh_token', 'access'],
    ['refresh_token', 'refresh'],
    ['access_token', 'refresh'],
    ['id_token', 'access'],
    ['id_token', 'refresh'],
  ];
  for (const [hint, kind] of cases) {
    const pair = await server.login(`user-${hint}-${kind}`);
    const token = kind === 'access' ? pair.access_token : pair.refresh_token;
    assertRevokeOk(await revoke(server, token, server.client, { token_type_hint: hint }));
    assert.equal(await isActive(server, pair.access_token), false, `${kind} with hint ${hint}`);
    if (kind === 'refresh') assertOAuthError(await refresh(server, pair.refresh_token), 400, 'invalid_grant');
  }
});

test('a missing or empty token parameter is invalid_request', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  assertOAuthError(
    await server.form('/revoke', {}, { authorization: server.client.basic }),
    400,
    'invalid_request',
  );
  assertOAuthError(await revoke(server, ''), 400, 'invalid_request');
  assertOAuthError(await revoke(server, 'x'.repeat(8193)), 400, 'invalid_request');
});

test('an expired token of ours is answered 200 and needs no rule', async (t) => {
  const clock = new ManualClock();
  const server = await startTestServer({ clock });
  t.after(() => server.close());
  const token = await clientCredentials(server);
  clock.advance(301_000);
  assertRevokeOk(await revoke(server, token));
  await assertNoRuleWritten(server);
});

test('revocation requires client authentication', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  const anonymous = await server.form('/revoke', { token });
  assertOAuthError(anonymous, 401, 'invalid_client');
  assert.equal(anonymous.headers['www-authenticate'], 'Basic realm="revokd"');
  const viaPost = await server.form('/revoke', {
    token,
    client_id: server.client.id,
    client_secret: server.client.secret,
  });
  assertRevokeOk(viaPost);
  assert.equal(await isActive(server, token), false);
});

test('an admin API token can be revoked by its own client, after which the admin API refuses it', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const ops = await server.addClient('ops2', {
    grants: ['client_credentials'],
    audiences: ['urn:revokd:admin'],
    scopes: ['revokd:admin'],
  });
  const token = await clientCredentials(server, ops);
  assert.equal((await admin(server, 'GET', '/admin/audit?limit=1', token)).statusCode, 200);
  assertRevokeOk(await revoke(server, token, ops));
  const after = await admin(server, 'GET', '/admin/audit?limit=1', token);
  assertOAuthError(after, 401, 'invalid_token');
});
