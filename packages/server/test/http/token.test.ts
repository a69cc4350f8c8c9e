import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { GRANT_TYPES } from '../../src/config/schema.ts';
import { API, basicAuth, ISSUER, startTestServer, type TestServer } from '../support/harness.ts';
import {
  assertOAuthError,
  auditOf,
  clientCredentials,
  SUBJECT_TOKEN_TYPE,
  TOKEN_EXCHANGE,
} from './helpers.ts';

const OTHER_API = 'https://other.example.com';

function exchange(server: TestServer, fields: Record<string, string>, client = server.client) {
  return server.form(
    '/token',
    { grant_type: TOKEN_EXCHANGE, subject_token_type: SUBJECT_TOKEN_TYPE, ...fields },
    { authorization: client.basic },
  );
}

async function jwks(server: TestServer): Promise<JSONWebKeySet> {
  return (await server.app.inject({ method: 'GET', url: '/jwks.json' })).json<JSONWebKeySet>();
}

test('client_credentials with client_secret_basic returns a Bearer access token and no refresh token', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const response = await server.form(
    '/token',
    { grant_type: 'client_credentials' },
    { authorization: server.client.basic },
  );
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['cache-control'], 'no-store');
  assert.equal(response.headers.pragma, 'no-cache');
  const body = response.json();
  assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'scope', 'token_type']);
  assert.equal(body.token_type, 'Bearer');
  assert.equal(body.expires_in, 300);
  assert.equal(body.scope, 'read write');
});

test('client_credentials with client_secret_post authenticates from the body', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const response = await server.form('/token', {
    grant_type: 'client_credentials',
    client_id: server.client.id,
    client_secret: server.client.secret,
  });
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(decodeJwt(response.json<{ access_token: string }>().access_token).client_id, server.client.id);
});

test('a client_id in the body that matches the Basic header is accepted', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const response = await server.form(
    '/token',
    { grant_type: 'client_credentials', client_id: server.client.id },
    { authorization: server.client.basic },
  );
  assert.equal(response.statusCode, 200, response.body);
});

test('Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1)', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const odd = await server.addClient('app:with space+plus');
  assert.match(odd.basic, /^Basic /);
  const response = await server.form(
    '/token',
    { grant_type: 'client_credentials' },
    { authorization: odd.basic },
  );
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(decodeJwt(response.json<{ access_token: string }>().access_token).sub, 'app:with space+plus');
});

test('the access token is an RFC 9068 JWT signed by a published key with every required claim', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  const header = decodeProtectedHeader(token);
  assert.equal(header.typ, 'at+jwt');
  assert.equal(header.alg, 'EdDSA');
  const keys = await jwks(server);
  assert.ok(
    keys.keys.some((k) => k.kid === header.kid),
    'kid is published in /jwks.json',
  );

  const { payload } = await jwtVerify(token, createLocalJWKSet(keys), {
    issuer: ISSUER,
    audience: API,
    typ: 'at+jwt',
  });
  assert.equal(payload.iss, ISSUER);
  assert.equal(payload.sub, server.client.id);
  assert.equal(payload.aud, API);
  assert.equal(payload.client_id, server.client.id);
  assert.equal(payload.scope, 'read write');
  assert.equal(typeof payload.jti, 'string');
  assert.ok(Number.isInteger(payload.iat));
  assert.equal(payload.exp, payload.iat! + 300);
  assert.ok(Math.abs(payload.iat! - Date.now() / 1000) < 5);
  const iatUs = payload.iat_us as number;
  assert.ok(Number.isSafeInteger(iatUs));
  assert.equal(Math.floor(iatUs / 1_000_000), payload.iat, 'iat_us lies within iat’s second');
  assert.equal(payload.sid, undefined, 'no session for client credentials');
  assert.equal(payload.fid, undefined);
});

test('every access token gets its own jti', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const jtis = new Set<unknown>();
  for (let i = 0; i < 5; i++) jtis.add(decodeJwt(await clientCredentials(server)).jti);
  assert.equal(jtis.size, 5);
});

test('a client may request a subset of its scopes; duplicates collapse', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const response = await server.form(
    '/token',
    { grant_type: 'client_credentials', scope: 'read read' },
    { authorization: server.client.basic },
  );
  assert.equal(response.statusCode, 200);
  assert.equal(response.json().scope, 'read');
  assert.equal(decodeJwt(response.json<{ access_token: string }>().access_token).scope, 'read');
});

test('a scope the client does not have is invalid_scope', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  for (const scope of ['admin', 'read admin', 'revokd:admin']) {
    const response = await server.form(
      '/token',
      { grant_type: 'client_credentials', scope },
      { authorization: server.client.basic },
    );
    assertOAuthError(response, 400, 'invalid_scope');
  }
});

test('a malformed scope string is invalid_scope', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  for (const scope of ['read  write', ' read', 'read ', 're"ad', 'read\\', 'lecture\u00e9']) {
    const response = await server.form(
      '/token',
      { grant_type: 'client_credentials', scope },
      { authorization: server.client.basic },
    );
    assertOAuthError(response, 400, 'invalid_scope');
  }
});

test('resource and audience select among the client’s audiences; others are invalid_target', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const multi = await server.addClient('multi', { audiences: [API, OTHER_API] });

  const one = await clientCredentials(server, multi, { resource: OTHER_API });
  assert.equal(decodeJwt(one).aud, OTHER_API);
  const both = await clientCredentials(server, multi, { resource: API, audience: OTHER_API });
  assert.deepEqual(decodeJwt(both).aud, [API, OTHER_API]);
  const fallback = await clientCredentials(server, multi);
  assert.equal(decodeJwt(fallback).aud, API, 'the first audience is the default');

  const refused: Array<Record<string, string>> = [
    { resource: OTHER_API },
    { audience: 'https://evil.example' },
  ];
  for (const fields of refused) {
    const response = await server.form(
      '/token',
      { grant_type: 'client_credentials', ...fields },
      { authorization: server.client.basic },
    );
    assertOAuthError(response, 400, 'invalid_target');
  }
  const tooMany = await server.form(
    '/token',
    { grant_type: 'client_credentials', resource: Array.from({ length: 17 }, () => API) },
    { authorization: server.client.basic },
  );
  assertOAuthError(tooMany, 400, 'invalid_target');
});

test('a grant the client is not registered for is unauthorized_client', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const exchangeOnly = await server.addClient('backend', { grants: [GRANT_TYPES.tokenExchange] });
  assertOAuthError(
    await server.form('/token', { grant_type: 'client_credentials' }, { authorization: exchangeOnly.basic }),
    400,
    'unauthorized_client',
  );
  // The resource server has client_credentials only.
  assertOAuthError(
    await exchange(server, { subject_token: 'alice' }, server.resourceServer),
    400,
    'unauthorized_client',
  );
  assertOAuthError(
    await server.form(
      '/token',
      { grant_type: 'refresh_token', refresh_token: 'whatever' },
      { authorization: server.resourceServer.basic },
    ),
    400,
    'unauthorized_client',
  );
});

test('an unknown grant type is unsupported_grant_type', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  for (const grant_type of [
    'password',
    'authorization_code',
    'implicit',
    'urn:ietf:params:oauth:grant-type:jwt-bearer',
  ]) {
    const response = await server.form('/token', { grant_type }, { authorization: server.client.basic });
    assertOAuthError(response, 400, 'unsupported_grant_type');
  }
});

test('a missing grant_type is invalid_request', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  assertOAuthError(
    await server.form('/token', {}, { authorization: server.client.basic }),
    400,
    'invalid_request',
  );
  assertOAuthError(
    await server.form('/token', { grant_type: '' }, { authorization: server.client.basic }),
    400,
    'invalid_request',
  );
});

test('a wrong secret or unknown client is 401 invalid_client with a Basic challenge, saying nothing about which', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const wrongSecret = await server.form(
    '/token',
    { grant_type: 'client_credentials' },
    { authorization: basicAuth(server.client.id, 'not-the-secret') },
  );
  const unknownClient = await server.form(
    '/token',
    { grant_type: 'client_credentials' },
    { authorization: basicAuth('nobody', server.client.secret) },
  );
  const wrongPost = await server.form('/token', {
    grant_type: 'client_credentials',
    client_id: server.client.id,
    client_secret: 'not-the-secret',
  });
  for (const response of [wrongSecret, unknownClient, wrongPost]) {
    assertOAuthError(response, 401, 'invalid_client');
    assert.equal(response.headers['www-authenticate'], 'Basic realm="revokd"');
  }
  assert.equal(wrongSecret.body, unknownClient.body);
});

test('no client authentication at all is 401 invalid_client', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const partial: Array<Record<string, string>> = [
    {},
    { client_id: server.client.id },
    { client_secret: server.client.secret },
  ];
  for (const fields of partial) {
    const response = await server.form('/token', { grant_type: 'client_credentials', ...fields });
    assertOAuthError(response, 401, 'invalid_client');
    assert.equal(response.headers['www-authenticate'], 'Basic realm="revokd"');
  }
});

test('using Basic and client_secret_post at once is 400 invalid_request', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const both = await server.form(
    '/token',
    { grant_type: 'client_credentials', client_id: server.client.id, client_secret: server.client.secret },
    { authorization: server.client.basic },
  );
  assertOAuthError(both, 400, 'invalid_request');
  const mismatch = await server.form(
    '/token',
    { grant_type: 'client_credentials', client_id: server.resourceServer.id },
    { authorization: server.client.basic },
  );
  assertOAuthError(mismatch, 400, 'invalid_request');
});

test('every token endpoint response, success or error, carries Cache-Control: no-store', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const responses = [
    await server.form('/token', { grant_type: 'client_credentials' }, { authorization: server.client.basic }),
    await exchange(server, { subject_token: 'alice' }),
    await server.form(
      '/token',
      { grant_type: 'client_credentials', scope: 'nope' },
      { authorization: server.client.basic },
    ),
    await server.form('/token', { grant_type: 'password' }, { authorization: server.client.basic }),
    await server.form(
      '/token',
      { grant_type: 'client_credentials' },
      { authorization: basicAuth('app', 'x') },
    ),
    await server.form(
      '/token',
      { grant_type: 'refresh_token', refresh_token: 'x' },
      { authorization: server.client.basic },
    ),
  ];
  assert.deepEqual(
    responses.map((r) => r.statusCode),
    [200, 200, 400, 400, 401, 400],
  );
  for (const response of responses) assert.equal(response.headers['cache-control'], 'no-store');
});

test('token exchange opens a session: access token with sid and fid, a refresh token, issued_token_type', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const response = await exchange(server, {
    subject_token: 'alice',
    claims: JSON.stringify({ roles: ['editor'] }),
  });
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(response.headers['cache-control'], 'no-store');
  const body = response.json<Record<string, unknown>>();
  assert.deepEqual(Object.keys(body).sort(), [
    'access_token',
    'expires_in',
    'issued_token_type',
    'refresh_token',
    'scope',
    'token_type',
  ]);
  assert.equal(body.token_type, 'Bearer');
  assert.equal(body.issued_token_type, 'urn:ietf:params:oauth:token-type:access_token');
  assert.equal(body.scope, 'read write');
  assert.match(body.refresh_token as string, /^[A-Za-z0-9_-]{43}$/);

  const { payload } = await jwtVerify(body.access_token as string, createLocalJWKSet(await jwks(server)), {
    issuer: ISSUER,
    audience: API,
    typ: 'at+jwt',
  });
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.client_id, server.client.id);
  assert.deepEqual(payload.roles, ['editor']);
  assert.equal(typeof payload.sid, 'string');
  assert.equal(typeof payload.fid, 'string');
  assert.equal(Math.floor((payload.iat_us as number) / 1_000_000), payload.iat);

  const second = (await exchange(server, { subject_token: 'alice' })).json<{ access_token: string }>();
  assert.notEqual(decodeJwt(second.access_token).sid, payload.sid, 'each exchange opens a new session');
});

test('token exchange honours scope and audience requests like client credentials', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const narrowed = await exchange(server, { subject_token: 'alice', scope: 'read' });
  assert.equal(narrowed.statusCode, 200);
  assert.equal(narrowed.json().scope, 'read');
  assertOAuthError(await exchange(server, { subject_token: 'alice', scope: 'delete' }), 400, 'invalid_scope');
  assertOAuthError(
    await exchange(server, { subject_token: 'alice', audience: OTHER_API }),
    400,
    'invalid_target',
  );
});

test('session claims are limited to the client’s sessionClaims', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const ok = await exchange(server, { subject_token: 'alice', claims: JSON.stringify({ roles: 'admin' }) });
  assert.equal(ok.statusCode, 200);
  assert.equal(decodeJwt(ok.json<{ access_token: string }>().access_token).roles, 'admin');
  const notAllowed = await exchange(server, {
    subject_token: 'alice',
    claims: JSON.stringify({ department: 'x' }),
  });
  assertOAuthError(notAllowed, 400, 'invalid_request');
});

test('reserved claims are rejected even when a client lists them as session claims', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const reserved = [
    'iss',
    'sub',
    'aud',
    'exp',
    'nbf',
    'iat',
    'jti',
    'client_id',
    'scope',
    'sid',
    'cnf',
    'act',
  ];
  const reckless = await server.addClient('reckless', {
    sessionClaims: ['roles', ...reserved, 'iat_us', 'fid'],
  });
  for (const claim of [...reserved, 'iat_us', 'fid']) {
    const response = await exchange(
      server,
      { subject_token: 'alice', claims: JSON.stringify({ [claim]: 'x' }) },
      reckless,
    );
    assertOAuthError(response, 400, 'invalid_request');
  }
  const proto = await exchange(server, { subject_token: 'alice', claims: '{"__proto__":{"roles":"admin"}}' });
  assertOAuthError(proto, 400, 'invalid_request');
});

test('claims must be a JSON object of strings, numbers, booleans or string arrays', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  for (const claims of [
    'not json',
    '[]',
    '"roles"',
    'null',
    '{"roles":{"nested":true}}',
    '{"roles":["a",1]}',
    '{"roles":null}',
  ]) {
    assertOAuthError(await exchange(server, { subject_token: 'alice', claims }), 400, 'invalid_request');
  }
});

test('token exchange validates subject_token, its type and requested_token_type', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const cases: Array<Record<string, string>> = [
    { subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', subject_token: 'alice' },
    { subject_token_type: '', subject_token: 'alice' },
    { subject_token: '' },
    { subject_token: 'has space' },
    { subject_token: 'x'.repeat(256) },
    { subject_token: 'caf\u00e9' },
    { subject_token: 'alice', requested_token_type: 'urn:ietf:params:oauth:token-type:id_token' },
    // The primary token of the answer is an access token; asking for a refresh token instead is refused.
    { subject_token: 'alice', requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' },
  ];
  for (const fields of cases) {
    assertOAuthError(await exchange(server, fields), 400, 'invalid_request');
  }
  const accessType = await exchange(server, {
    subject_token: 'alice',
    requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
  });
  assert.equal(accessType.statusCode, 200);
});

test('a client’s own access-token lifetime is used for expires_in and exp', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const short = await server.addClient('short', { accessTokenTtlSeconds: 60 });
  const response = await server.form(
    '/token',
    { grant_type: 'client_credentials' },
    { authorization: short.basic },
  );
  assert.equal(response.json().expires_in, 60);
  const payload = decodeJwt(response.json<{ access_token: string }>().access_token);
  assert.equal(payload.exp, payload.iat! + 60);
});

test('issuance is recorded in the audit log without the token itself', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  const events = await auditOf(server, 'issued');
  const jti = decodeJwt(token).jti;
  const event = events.find((e) => e.jti === jti);
  assert.ok(event);
  assert.equal(event.clientId, server.client.id);
  assert.deepEqual(event.detail, { grant: 'client_credentials' });
  assert.equal(JSON.stringify(events).includes(token), false);
});
