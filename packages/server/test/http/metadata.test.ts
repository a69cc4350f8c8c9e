import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { API, ISSUER, startTestServer } from '../support/harness.ts';
import { clientCredentials } from './helpers.ts';

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

test('the RFC 8414 metadata document names every endpoint, grant and auth method under our issuer', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const response = await server.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
  assert.equal(response.statusCode, 200);
  assert.match(String(response.headers['content-type']), /^application\/json/);
  const methods = ['client_secret_basic', 'client_secret_post'];
  assert.deepEqual(response.json(), {
    issuer: ISSUER,
    token_endpoint: `${ISSUER}/token`,
    jwks_uri: `${ISSUER}/jwks.json`,
    revocation_endpoint: `${ISSUER}/revoke`,
    introspection_endpoint: `${ISSUER}/introspect`,
    grant_types_supported: [
      'client_credentials',
      'refresh_token',
      'urn:ietf:params:oauth:grant-type:token-exchange',
    ],
    response_types_supported: [],
    token_endpoint_auth_methods_supported: methods,
    revocation_endpoint_auth_methods_supported: methods,
    introspection_endpoint_auth_methods_supported: methods,
    service_documentation: 'https://github.com/revokd/revokd/blob/main/docs/api.md',
  });
});

test('the metadata issuer is exactly the iss of issued access tokens', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const metadata = (
    await server.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' })
  ).json<{
    issuer: string;
  }>();
  const token = await clientCredentials(server);
  const jwks = (await server.app.inject({ method: 'GET', url: '/jwks.json' })).json<JSONWebKeySet>();
  const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
    issuer: metadata.issuer,
    audience: API,
    typ: 'at+jwt',
  });
  assert.equal(payload.iss, metadata.issuer);
});

test('the JWKS publishes the signing key with kid, alg and use, and verifies issued tokens', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const response = await server.app.inject({ method: 'GET', url: '/jwks.json' });
  assert.equal(response.statusCode, 200);
  assert.match(String(response.headers['content-type']), /^application\/jwk-set\+json/);
  const jwks = response.json<JSONWebKeySet>();
  assert.equal(jwks.keys.length, 1);
  const [key] = jwks.keys;
  assert.ok(key);
  assert.equal(key.kty, 'OKP');
  assert.equal(key.crv, 'Ed25519');
  assert.equal(key.alg, 'EdDSA');
  assert.equal(key.use, 'sig');
  assert.equal(typeof key.kid, 'string');
  assert.equal(typeof key.x, 'string');
  for (const member of PRIVATE_JWK_MEMBERS) assert.equal(member in key, false, `private member ${member}`);

  const token = await clientCredentials(server);
  assert.equal(decodeProtectedHeader(token).kid, key.kid);
  await jwtVerify(token, createLocalJWKSet(jwks), { issuer: ISSUER, typ: 'at+jwt' });
});

test('an RSA JWKS carries the public modulus and exponent only, no private members', async (t) => {
  const server = await startTestServer({ config: { signing: { algorithm: 'RS256' } } });
  t.after(() => server.close());
  const jwks = (await server.app.inject({ method: 'GET', url: '/jwks.json' })).json<JSONWebKeySet>();
  const [key] = jwks.keys;
  assert.ok(key);
  assert.deepEqual(Object.keys(key).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use']);
  assert.equal(key.alg, 'RS256');
  assert.equal(key.kty, 'RSA');
  const token = await clientCredentials(server);
  assert.equal(decodeProtectedHeader(token).alg, 'RS256');
  await jwtVerify(token, createLocalJWKSet(jwks), { issuer: ISSUER, typ: 'at+jwt' });
});

test('metadata and JWKS answer only GET: other methods get 405 with Allow: GET', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  for (const url of ['/.well-known/oauth-authorization-server', '/jwks.json']) {
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      const response = await server.app.inject({ method, url });
      assert.equal(response.statusCode, 405, `${method} ${url}`);
      assert.equal(response.headers.allow, 'GET');
      assert.equal(response.json().error, 'method_not_allowed');
    }
  }
});
