/**
 * Adversarial requests, one row per attack: each gets exactly the expected status and error, never a 500, and
 * changes nothing (no rule, no session, no audit event other than the introspection that was answered).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { decodeJwt, decodeProtectedHeader, importJWK, type JWK, SignJWT } from 'jose';
import { ManualClock } from '../../src/core/clock.ts';
import {
  basicAuth,
  encodeForm,
  type InjectResult,
  startTestServer,
  type TestClient,
  type TestServer,
  type TokenPair,
} from '../support/harness.ts';
import { assertOAuthError, queryStore, SUBJECT_TOKEN_TYPE, TOKEN_EXCHANGE } from './helpers.ts';

const FORM = 'application/x-www-form-urlencoded';

interface Fixtures {
  server: TestServer;
  /** An access token of the default client (`app`). */
  appToken: string;
  /** Another client, with every grant, and an access token of it. */
  stranger: TestClient;
  strangerToken: string;
  session: TokenPair;
  adminToken: string;
  /** Tokens that look like ours but must never be accepted, keyed by attack. */
  forged: Record<
    'algNone' | 'hs256Confusion' | 'badKid' | 'foreignIssuer' | 'wrongTyp' | 'expired' | 'tampered',
    string
  >;
  /** The same attacks, carrying admin claims (aud urn:revokd:admin, scope revokd:admin). */
  forgedAdmin: Record<
    'algNone' | 'hs256Confusion' | 'badKid' | 'foreignIssuer' | 'wrongTyp' | 'expired',
    string
  >;
}

let fx: Fixtures;

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function forgeries(server: TestServer, real: string) {
  const claims = decodeJwt(real);
  const { kid } = decodeProtectedHeader(real);
  const [key] = await server.runtime.store.listSigningKeys();
  assert.ok(key);
  const ourPrivateKey = await importJWK(key.privateJwk as JWK, key.alg);
  const publicKeyBytes = Buffer.from(JSON.stringify(key.publicJwk));
  const [, , signature] = real.split('.');
  return {
    algNone: `${b64url({ alg: 'none', typ: 'at+jwt', kid })}.${b64url(claims)}.`,
    hs256Confusion: await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: kid! })
      .sign(publicKeyBytes),
    badKid: await new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: 'not-a-published-kid' })
      .sign(ourPrivateKey),
    foreignIssuer: await server.runtime.keyring.sign({ ...claims, iss: 'https://evil.example' }, 'at+jwt'),
    wrongTyp: await server.runtime.keyring.sign(claims, 'JWT'),
    expired: await server.runtime.keyring.sign(
      { ...claims, iat: claims.iat! - 600, iat_us: (claims.iat! - 600) * 1_000_000, exp: claims.iat! - 300 },
      'at+jwt',
    ),
    tampered: `${real.split('.')[0]}.${b64url({ ...claims, scope: 'read write revokd:admin' })}.${signature}`,
  };
}

before(async () => {
  const server = await startTestServer({ clock: new ManualClock() });
  const stranger = await server.addClient('stranger');
  const tokenOf = async (basic: string) =>
    (await server.form('/token', { grant_type: 'client_credentials' }, { authorization: basic })).json<{
      access_token: string;
    }>().access_token;
  const appToken = await tokenOf(server.client.basic);
  const adminToken = await server.adminToken();
  fx = {
    server,
    appToken,
    stranger,
    strangerToken: await tokenOf(stranger.basic),
    session: await server.login('alice'),
    adminToken,
    forged: await forgeries(server, appToken),
    forgedAdmin: await forgeries(server, adminToken),
  };
});

after(() => fx.server.close());

const app = () => fx.server.client;
const post = (url: string, payload: string, headers: Record<string, string> = {}): InjectOptions => ({
  method: 'POST',
  url,
  headers: { 'content-type': FORM, ...headers },
  payload,
});
const tokenForm = (fields: Record<string, string | string[]>, headers?: Record<string, string>) =>
  post('/token', encodeForm(fields), { authorization: app().basic, ...headers });
const revokeForm = (fields: Record<string, string | string[]>) =>
  post('/revoke', encodeForm(fields), { authorization: app().basic });
const introspectForm = (fields: Record<string, string | string[]>) =>
  post('/introspect', encodeForm(fields), { authorization: fx.server.resourceServer.basic });
const basicToken = (authorization: string) =>
  post('/token', encodeForm({ grant_type: 'client_credentials' }), { authorization });
const adminCall = (
  authorization: string | undefined,
  payload = '{"reason":"administrative"}',
): InjectOptions => ({
  method: 'POST',
  url: '/admin/revoke-all',
  headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
  payload,
});
const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');

interface Attack {
  readonly name: string;
  readonly request: () => InjectOptions;
  readonly status: number;
  /** The `error` code, or for a 200: the exact JSON body (introspection) or '' (revocation). */
  readonly error?: string;
  readonly body?: unknown;
  readonly check?: (response: InjectResult) => void;
}

const BASIC_CHALLENGE = (r: InjectResult) =>
  assert.equal(r.headers['www-authenticate'], 'Basic realm="revokd"');
const BEARER_CHALLENGE = (r: InjectResult) =>
  assert.match(String(r.headers['www-authenticate']), /^Bearer realm="revokd", error="invalid_token"/);
/** RFC 6750 §3.1: a request with no credentials at all gets a challenge without an error code. */
const BARE_BEARER_CHALLENGE = (r: InjectResult) =>
  assert.equal(String(r.headers['www-authenticate']), 'Bearer realm="revokd"');
const INACTIVE = { active: false };

const ATTACKS: Attack[] = [
  // --- bodies at the token endpoint ---
  {
    name: 'JSON body at /token',
    request: () => ({
      method: 'POST',
      url: '/token',
      headers: { 'content-type': 'application/json', authorization: app().basic },
      payload: JSON.stringify({ grant_type: 'client_credentials' }),
    }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'malformed JSON body at /token',
    request: () => ({
      method: 'POST',
      url: '/token',
      headers: { 'content-type': 'application/json', authorization: app().basic },
      payload: '{"grant_type":',
    }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'text/plain body at /token',
    request: () => ({
      method: 'POST',
      url: '/token',
      headers: { 'content-type': 'text/plain', authorization: app().basic },
      payload: 'grant_type=client_credentials',
    }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'unsupported content type at /token',
    request: () => ({
      method: 'POST',
      url: '/token',
      headers: { 'content-type': 'application/xml', authorization: app().basic },
      payload: '<grant_type>client_credentials</grant_type>',
    }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'no body at all at /token',
    request: () => ({ method: 'POST', url: '/token', headers: { authorization: app().basic } }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'empty form body at /token',
    request: () => post('/token', '', { authorization: app().basic }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'malformed form body (stray separators and percent signs)',
    request: () => post('/token', '=&&%%%=%zz&grant_type', { authorization: app().basic }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'oversized body (> http.bodyLimitBytes)',
    request: () => tokenForm({ grant_type: 'client_credentials', padding: 'x'.repeat(17_000) }),
    status: 413,
    error: 'invalid_request',
  },
  {
    name: 'oversized body at /revoke',
    request: () => revokeForm({ token: 'x'.repeat(20_000) }),
    status: 413,
    error: 'invalid_request',
  },
  // --- parameters ---
  {
    name: 'grant_type repeated',
    request: () => tokenForm({ grant_type: ['client_credentials', 'client_credentials'] }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'grant_type repeated with different values',
    request: () => tokenForm({ grant_type: ['client_credentials', 'refresh_token'] }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'client_id repeated (client_secret_post)',
    request: () =>
      post(
        '/token',
        encodeForm({
          grant_type: 'client_credentials',
          client_id: [app().id, app().id],
          client_secret: app().secret,
        }),
      ),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'client_secret repeated',
    request: () =>
      post(
        '/token',
        encodeForm({
          grant_type: 'client_credentials',
          client_id: app().id,
          client_secret: [app().secret, 'other'],
        }),
      ),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'scope repeated',
    request: () => tokenForm({ grant_type: 'client_credentials', scope: ['read', 'write'] }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'refresh_token repeated',
    request: () => tokenForm({ grant_type: 'refresh_token', refresh_token: [fx.session.refresh_token, 'x'] }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'token repeated at /revoke',
    request: () => revokeForm({ token: [fx.appToken, fx.appToken] }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'token repeated at /introspect',
    request: () => introspectForm({ token: [fx.appToken, 'x'] }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'unknown grant type',
    request: () => tokenForm({ grant_type: 'password', username: 'alice', password: 'x' }),
    status: 400,
    error: 'unsupported_grant_type',
  },
  {
    name: 'empty grant_type',
    request: () => tokenForm({ grant_type: '' }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'empty token at /revoke',
    request: () => revokeForm({ token: '' }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'empty client_secret (client_secret_post)',
    request: () =>
      post(
        '/token',
        encodeForm({ grant_type: 'client_credentials', client_id: app().id, client_secret: '' }),
      ),
    status: 401,
    error: 'invalid_client',
    check: BASIC_CHALLENGE,
  },
  {
    name: '10 kB token at /revoke',
    request: () => revokeForm({ token: 'a'.repeat(10_240) }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: '10 kB token at /introspect',
    request: () => introspectForm({ token: 'a'.repeat(10_240) }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: '10 kB refresh token',
    request: () => tokenForm({ grant_type: 'refresh_token', refresh_token: 'a'.repeat(10_240) }),
    status: 400,
    error: 'invalid_grant',
  },
  {
    name: '10 kB subject token',
    request: () =>
      tokenForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: 'a'.repeat(10_240),
        subject_token_type: SUBJECT_TOKEN_TYPE,
      }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'NUL byte in subject token',
    request: () =>
      tokenForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: 'alice\u0000admin',
        subject_token_type: SUBJECT_TOKEN_TYPE,
      }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'non-ASCII subject token',
    request: () =>
      tokenForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: 'аlice',
        subject_token_type: SUBJECT_TOKEN_TYPE,
      }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'NUL and non-ASCII bytes in a token at /revoke',
    request: () => revokeForm({ token: 'abc\u0000d\u00e9f\uFFFD.\u0000.x' }),
    status: 200,
    body: '',
  },
  {
    name: 'NUL bytes in a token at /introspect',
    request: () => introspectForm({ token: `${fx.appToken}\u0000` }),
    status: 200,
    body: INACTIVE,
  },
  {
    name: 'NUL byte in refresh token',
    request: () =>
      tokenForm({ grant_type: 'refresh_token', refresh_token: `${fx.session.refresh_token}\u0000` }),
    status: 400,
    error: 'invalid_grant',
  },
  {
    name: 'non-ASCII scope',
    request: () => tokenForm({ grant_type: 'client_credentials', scope: 'r\u00e9ad' }),
    status: 400,
    error: 'invalid_scope',
  },
  {
    name: 'invalid UTF-8 in the body',
    request: () => ({
      method: 'POST',
      url: '/token',
      headers: { 'content-type': FORM, authorization: app().basic },
      payload: Buffer.from([
        0x67, 0x72, 0x61, 0x6e, 0x74, 0x5f, 0x74, 0x79, 0x70, 0x65, 0x3d, 0xff, 0xfe, 0x00,
      ]),
    }),
    status: 400,
    error: 'unsupported_grant_type',
  },
  // --- client authentication ---
  ...(
    [
      ['Basic without credentials', () => 'Basic'],
      ['Basic with a non-base64 value', () => 'Basic !!!!'],
      ['Basic with two spaces', () => `Basic  ${b64(`${app().id}:${app().secret}`)}`],
      ['Basic without a colon', () => `Basic ${b64(app().id)}`],
      ['Basic with an empty client id', () => `Basic ${b64(`:${app().secret}`)}`],
      ['Basic with an empty secret', () => `Basic ${b64(`${app().id}:`)}`],
      ['Basic with a malformed percent-encoding', () => `Basic ${b64(`%ZZ:${app().secret}`)}`],
      ['Basic with a NUL in the client id', () => `Basic ${b64(`app\u0000:${app().secret}`)}`],
      ['Basic with latin-1 bytes', () => `Basic ${b64('\u00e9\u00ff:\u00e9')}`],
      [
        'Basic with the right secret of another client',
        () => basicAuth(app().id, fx.server.resourceServer.secret),
      ],
      ['Basic with 2 kB of base64', () => `Basic ${'QUFB'.repeat(512)}`],
      ['a Bearer token instead of client credentials', () => `Bearer ${fx.appToken}`],
      ['an unknown scheme', () => `Digest username="app"`],
    ] as const
  ).map(
    ([name, header]): Attack => ({
      name,
      request: () => basicToken(header()),
      status: 401,
      error: 'invalid_client',
      check: BASIC_CHALLENGE,
    }),
  ),
  {
    name: 'Basic and client_secret_post at once',
    request: () =>
      tokenForm({ grant_type: 'client_credentials', client_id: app().id, client_secret: app().secret }),
    status: 400,
    error: 'invalid_request',
  },
  // --- tokens that are not ours, at /revoke (200, no rule) and /introspect ({active:false}) ---
  ...(
    ['algNone', 'hs256Confusion', 'badKid', 'foreignIssuer', 'wrongTyp', 'expired', 'tampered'] as const
  ).flatMap((kind): Attack[] => [
    {
      name: `${kind} token at /revoke`,
      request: () => revokeForm({ token: fx.forged[kind] }),
      status: 200,
      body: '',
    },
    {
      name: `${kind} token at /introspect`,
      request: () => introspectForm({ token: fx.forged[kind] }),
      status: 200,
      body: INACTIVE,
    },
  ]),
  {
    name: 'another client’s valid token at /revoke',
    request: () => revokeForm({ token: fx.strangerToken }),
    status: 400,
    error: 'unauthorized_client',
  },
  {
    name: 'another client’s refresh token at /revoke',
    request: () => ({
      ...post('/revoke', encodeForm({ token: fx.session.refresh_token }), {
        authorization: fx.server.resourceServer.basic,
      }),
    }),
    status: 400,
    error: 'unauthorized_client',
  },
  {
    name: 'another client’s refresh token at /token',
    request: () =>
      post('/token', encodeForm({ grant_type: 'refresh_token', refresh_token: fx.session.refresh_token }), {
        authorization: fx.stranger.basic,
      }),
    status: 400,
    error: 'invalid_grant',
  },
  // --- the admin API's Bearer authentication ---
  ...(['algNone', 'hs256Confusion', 'badKid', 'foreignIssuer', 'wrongTyp', 'expired'] as const).map(
    (kind): Attack => ({
      name: `${kind} admin token as Bearer`,
      request: () => adminCall(`Bearer ${fx.forgedAdmin[kind]}`),
      status: 401,
      error: 'invalid_token',
      check: BEARER_CHALLENGE,
    }),
  ),
  {
    name: 'admin Bearer with a tampered scope',
    request: () => adminCall(`Bearer ${fx.forged.tampered}`),
    status: 401,
    error: 'invalid_token',
    check: BEARER_CHALLENGE,
  },
  {
    name: 'admin Bearer with a token for another audience',
    request: () => adminCall(`Bearer ${fx.appToken}`),
    status: 401,
    error: 'invalid_token',
    check: BEARER_CHALLENGE,
  },
  {
    name: 'admin Bearer with a refresh token',
    request: () => adminCall(`Bearer ${fx.session.refresh_token}`),
    status: 401,
    error: 'invalid_token',
    check: BEARER_CHALLENGE,
  },
  {
    name: 'admin without any Authorization',
    request: () => adminCall(undefined),
    status: 401,
    error: 'invalid_token',
    check: BARE_BEARER_CHALLENGE,
  },
  {
    name: 'admin JSON with __proto__',
    request: () =>
      adminCall(`Bearer ${fx.adminToken}`, '{"reason":"administrative","__proto__":{"isAdmin":true}}'),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'admin JSON with constructor.prototype',
    request: () =>
      adminCall(`Bearer ${fx.adminToken}`, '{"reason":"administrative","constructor":{"prototype":{"x":1}}}'),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'admin JSON with an extra key',
    request: () => adminCall(`Bearer ${fx.adminToken}`, '{"reason":"administrative","force":true}'),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'admin JSON that is not an object',
    request: () => adminCall(`Bearer ${fx.adminToken}`, '["administrative"]'),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'admin JSON that does not parse',
    request: () => adminCall(`Bearer ${fx.adminToken}`, '{"reason":'),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'admin with a form body',
    request: () => ({
      method: 'POST',
      url: '/admin/revoke-all',
      headers: { 'content-type': FORM, authorization: `Bearer ${fx.adminToken}` },
      payload: 'reason=administrative',
    }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'admin with a reason that is not one of ours',
    request: () => adminCall(`Bearer ${fx.adminToken}`, '{"reason":"drop table rules"}'),
    status: 400,
    error: 'invalid_request',
  },
  // --- methods and paths ---
  ...(
    [
      ['GET', '/token'],
      ['PUT', '/token'],
      ['DELETE', '/revoke'],
      ['GET', '/revoke'],
      ['PATCH', '/introspect'],
      ['GET', '/introspect'],
    ] as const
  ).map(
    ([method, url]): Attack => ({
      name: `${method} ${url}`,
      request: () => ({ method, url, headers: { authorization: app().basic } }),
      status: 405,
      error: 'method_not_allowed',
      check: (r) => assert.equal(r.headers.allow, 'POST'),
    }),
  ),
  { name: 'unknown path', request: () => ({ method: 'GET', url: '/nope' }), status: 404, error: 'not_found' },
  {
    name: 'unknown path with a POST body',
    request: () => post('/oauth/token', encodeForm({ grant_type: 'client_credentials' })),
    status: 404,
    error: 'not_found',
  },
  {
    name: 'malformed percent-encoding in an admin path',
    request: () => ({ ...adminCall(`Bearer ${fx.adminToken}`), url: '/admin/subjects/%ZZ/revoke' }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'over-long admin path parameter',
    request: () => ({
      ...adminCall(`Bearer ${fx.adminToken}`),
      url: `/admin/subjects/${'a'.repeat(600)}/revoke`,
    }),
    status: 414,
    error: 'invalid_request',
  },
  {
    name: 'path traversal',
    request: () => ({ method: 'GET', url: '/../../etc/passwd' }),
    status: 404,
    error: 'not_found',
  },
];

/** What a hostile request must not have changed. */
async function footprint(server: TestServer) {
  // Issuance audit events are written after the answer: wait for them, so a token issued by an attack counts.
  await server.runtime.audit.flush();
  const audit = await server.runtime.store.readAudit({ limit: 100_000 });
  return {
    rules: (await server.runtime.store.readLog(0, 100_000)).length,
    index: server.runtime.revocation.index.size,
    writes: audit.filter((e) => e.type !== 'introspected').length,
    rows: queryStore<Record<string, number>>(
      server,
      `SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM refresh_tokens) AS tokens,
        (SELECT count(*) FROM refresh_tokens WHERE rotated_at_ms IS NOT NULL) AS rotated,
        (SELECT count(*) FROM sessions WHERE ended_at_ms IS NOT NULL) AS ended,
        (SELECT count(*) FROM subjects) AS subjects`,
    ),
  };
}

for (const attack of ATTACKS) {
  test(`hostile input: ${attack.name} → ${attack.status} ${attack.error ?? ''}`.trim(), async () => {
    const before = await footprint(fx.server);
    const response = (await fx.server.app.inject(attack.request())) as unknown as InjectResult;
    if (attack.error !== undefined) {
      assertOAuthError(response, attack.status, attack.error);
    } else {
      assert.equal(response.statusCode, attack.status, response.body);
      if (typeof attack.body === 'string') assert.equal(response.body, attack.body);
      else assert.deepEqual(response.json(), attack.body);
    }
    attack.check?.(response);
    assert.deepEqual(await footprint(fx.server), before, 'nothing was written');
  });
}

test('hostile input left every legitimate token working', async () => {
  const introspect = async (token: string) =>
    (await fx.server.form('/introspect', { token }, { authorization: fx.server.resourceServer.basic })).json<{
      active: boolean;
    }>().active;
  assert.equal(await introspect(fx.appToken), true);
  assert.equal(await introspect(fx.strangerToken), true);
  assert.equal(await introspect(fx.session.access_token), true);
  assert.equal(await introspect(fx.session.refresh_token), true);
});

test('rate limit per address: the 4th request in a burst of 3 is 429 with Retry-After', async (t) => {
  const clock = new ManualClock();
  const server = await startTestServer({
    clock,
    config: { rateLimit: { enabled: true, perAddress: { ratePerSecond: 1, burst: 3 } } },
  });
  t.after(() => server.close());
  const request = () =>
    server.form('/token', { grant_type: 'client_credentials' }, { authorization: server.client.basic });
  for (let i = 0; i < 3; i++) assert.equal((await request()).statusCode, 200);
  const limited = await request();
  assertOAuthError(limited, 429, 'temporarily_unavailable');
  assert.equal(limited.headers['retry-after'], '1');
  // The address limit comes before authentication: anonymous and other endpoints are limited too.
  assertOAuthError(await server.form('/revoke', { token: 'x' }), 429, 'temporarily_unavailable');
  assertOAuthError(
    await server.form('/introspect', { token: 'x' }, { authorization: server.resourceServer.basic }),
    429,
    'temporarily_unavailable',
  );
  clock.advance(1000);
  assert.equal((await request()).statusCode, 200, 'one token refilled after a second');
  assertOAuthError(await request(), 429, 'temporarily_unavailable');
});

test('rate limit per client: one client’s burst does not limit another', async (t) => {
  const clock = new ManualClock();
  const server = await startTestServer({
    clock,
    config: { rateLimit: { enabled: true, perClient: { ratePerSecond: 1, burst: 2 } } },
  });
  t.after(() => server.close());
  const request = (basic: string) =>
    server.form('/token', { grant_type: 'client_credentials' }, { authorization: basic });
  assert.equal((await request(server.client.basic)).statusCode, 200);
  assert.equal((await request(server.client.basic)).statusCode, 200);
  const limited = await request(server.client.basic);
  assertOAuthError(limited, 429, 'temporarily_unavailable');
  assert.equal(limited.headers['retry-after'], '1');
  assert.equal((await request(server.resourceServer.basic)).statusCode, 200);
});
