import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { ManualClock } from '../../src/core/clock.ts';
import { API, basicAuth, ISSUER, startTestServer } from '../support/harness.ts';
import {
  admin,
  assertOAuthError,
  auditOf,
  clientCredentials,
  introspect,
  refreshOk,
  revoke,
  sessionIds,
} from './helpers.ts';

const INACTIVE = { active: false };

test('an active access token introspects with its claims (RFC 7662 §2.2)', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  const claims = decodeJwt(token);
  const result = await introspect(server, token, server.client);
  assert.deepEqual(result, {
    active: true,
    token_type: 'Bearer',
    iss: ISSUER,
    sub: server.client.id,
    aud: API,
    exp: claims.exp,
    iat: claims.iat,
    jti: claims.jti,
    client_id: server.client.id,
    scope: 'read write',
  });
});

test('a session access token introspects with its sid, without revokd’s internal claims', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const pair = await server.login('alice', { claims: { roles: ['admin'] } });
  const result = await introspect(server, pair.access_token);
  assert.equal(result.active, true);
  assert.equal(result.sub, 'alice');
  assert.equal(result.sid, sessionIds(pair.access_token).sid);
  assert.equal(result.client_id, server.client.id);
  for (const name of ['fid', 'iat_us']) assert.equal(name in result, false, name);
});

test('a revoked access token is { active: false } and nothing else', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  assert.equal((await revoke(server, token)).statusCode, 200);
  assert.deepEqual(await introspect(server, token, server.client), INACTIVE);
  assert.deepEqual(await introspect(server, token), INACTIVE);
});

test('an access token is active until its exp and inactive from then on', async (t) => {
  const clock = new ManualClock();
  const server = await startTestServer({ clock });
  t.after(() => server.close());
  const token = await clientCredentials(server);
  clock.advance(299_000);
  assert.equal((await introspect(server, token)).active, true);
  clock.advance(1_000);
  assert.deepEqual(await introspect(server, token), INACTIVE);
});

test('unknown, malformed, foreign-issuer and forged tokens are { active: false }', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const real = await clientCredentials(server);
  const claims = decodeJwt(real);
  const { privateKey } = await generateKeyPair('EdDSA');
  const forged = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid: decodeProtectedHeader(real).kid!, typ: 'at+jwt' })
    .sign(privateKey);
  const foreignIssuer = await server.runtime.keyring.sign(
    { ...claims, iss: 'https://evil.example' },
    'at+jwt',
  );
  const wrongTyp = await server.runtime.keyring.sign(claims, 'JWT');
  for (const token of ['unknown', 'a.b.c', real.slice(0, -4), forged, foreignIssuer, wrongTyp]) {
    assert.deepEqual(await introspect(server, token), INACTIVE);
  }
});

test('a client without canIntrospect sees other clients’ tokens as inactive', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const stranger = await server.addClient('stranger');
  const token = await clientCredentials(server);
  const pair = await server.login('alice');
  assert.deepEqual(await introspect(server, token, stranger), INACTIVE);
  assert.deepEqual(await introspect(server, pair.access_token, stranger), INACTIVE);
  assert.deepEqual(await introspect(server, pair.refresh_token, stranger), INACTIVE);
  // …and looking did not change anything.
  assert.equal((await introspect(server, token, server.client)).active, true);
});

test('the resource server (canIntrospect) sees any client’s tokens', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  const result = await introspect(server, token, server.resourceServer);
  assert.equal(result.active, true);
  assert.equal(result.client_id, server.client.id);
});

test('a refresh token introspects as token_type refresh_token with its session', async (t) => {
  const clock = new ManualClock();
  const server = await startTestServer({ clock });
  t.after(() => server.close());
  const loginAt = clock.nowMs();
  const pair = await server.login('alice', { scope: 'read' });
  const result = await introspect(server, pair.refresh_token, server.client);
  assert.deepEqual(result, {
    active: true,
    token_type: 'refresh_token',
    iss: ISSUER,
    sub: 'alice',
    aud: API,
    client_id: server.client.id,
    scope: 'read',
    sid: sessionIds(pair.access_token).sid,
    iat: Math.floor(loginAt / 1000),
    // The earlier of the idle timeout (14 days) and the absolute lifetime (30 days).
    exp: Math.floor(loginAt / 1000) + 14 * 86_400,
  });
});

test('a refresh token becomes inactive once rotated; its successor is active', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const pair = await server.login('alice');
  const next = await refreshOk(server, pair.refresh_token);
  assert.deepEqual(await introspect(server, pair.refresh_token), INACTIVE);
  assert.equal((await introspect(server, next.refresh_token)).active, true);
});

test('a suspended subject’s refresh token is inactive', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const pair = await server.login('mallory');
  await admin(server, 'POST', '/admin/subjects/mallory/suspend', await server.adminToken());
  assert.deepEqual(await introspect(server, pair.refresh_token), INACTIVE);
  assert.deepEqual(await introspect(server, pair.access_token), INACTIVE);
});

test('token_type_hint does not hide a token of the other type', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const pair = await server.login('alice');
  const asRefresh = await introspect(server, pair.access_token, server.client, {
    token_type_hint: 'refresh_token',
  });
  assert.equal(asRefresh.token_type, 'Bearer');
  const asAccess = await introspect(server, pair.refresh_token, server.client, {
    token_type_hint: 'access_token',
  });
  assert.equal(asAccess.token_type, 'refresh_token');
});

test('introspection requires client authentication: 401 invalid_client with a Basic challenge', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  const attempts: Array<Record<string, string>> = [
    {},
    { authorization: basicAuth(server.resourceServer.id, 'wrong') },
  ];
  for (const headers of attempts) {
    const response = await server.form('/introspect', { token }, headers);
    assertOAuthError(response, 401, 'invalid_client');
    assert.equal(response.headers['www-authenticate'], 'Basic realm="revokd"');
  }
});

test('a missing token parameter is invalid_request', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  assertOAuthError(
    await server.form('/introspect', {}, { authorization: server.resourceServer.basic }),
    400,
    'invalid_request',
  );
});

test('each introspection is audited with its caller and outcome', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  await introspect(server, token);
  await introspect(server, 'unknown');
  const events = await auditOf(server, 'introspected');
  assert.equal(events.length, 2);
  assert.equal(events[0]!.actor, server.resourceServer.id);
  assert.equal(events[0]!.jti, decodeJwt(token).jti);
  assert.deepEqual(events[0]!.detail, { active: true });
  assert.deepEqual(events[1]!.detail, { active: false });
  assert.equal(events[1]!.jti, undefined);
});
