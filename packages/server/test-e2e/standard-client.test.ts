/**
 * A standard OAuth client library (oauth4webapi) drives a real `revokd serve` process: RFC 8414 discovery, the
 * client credentials grant with both client authentication methods, RFC 8693 token exchange opening a user
 * session, refresh with rotation, RFC 7009 revocation and RFC 7662 introspection, and RFC 9068 validation of the
 * access token by a resource server.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as oauth from 'oauth4webapi';
import { addClientViaCli, type ServerProcess, startServer, tempDataDir } from '../test/support/process.ts';

const API = 'https://api.example.com';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const SUBJECT_TOKEN_TYPE = 'urn:revokd:params:oauth:token-type:subject';
/** The server speaks http on loopback; oauth4webapi insists on https unless told otherwise. */
const INSECURE = { [oauth.allowInsecureRequests]: true } as const;

interface Setup {
  server: ServerProcess;
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  secret: string;
}

async function setUp(t: { after(fn: () => unknown): void }): Promise<Setup> {
  const dbPath = join(tempDataDir(), 'revokd.db');
  const server = await startServer({ dbPath });
  t.after(() => server.stop());
  const credentials = await addClientViaCli(dbPath, 'std-client');
  const issuer = new URL(server.url);
  const response = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...INSECURE });
  const as = await oauth.processDiscoveryResponse(issuer, response);
  return { server, as, client: { client_id: credentials.client_id }, secret: credentials.client_secret };
}

async function introspect(setup: Setup, token: string): Promise<oauth.IntrospectionResponse> {
  const { as, client, secret } = setup;
  const response = await oauth.introspectionRequest(
    as,
    client,
    oauth.ClientSecretBasic(secret),
    token,
    INSECURE,
  );
  return oauth.processIntrospectionResponse(as, client, response);
}

test('discovery publishes RFC 8414 metadata that oauth4webapi accepts', async (t) => {
  const { server, as } = await setUp(t);
  assert.equal(as.issuer, server.url);
  assert.equal(as.token_endpoint, `${server.url}/token`);
  assert.equal(as.revocation_endpoint, `${server.url}/revoke`);
  assert.equal(as.introspection_endpoint, `${server.url}/introspect`);
  assert.equal(as.jwks_uri, `${server.url}/jwks.json`);
  assert.deepEqual([...(as.token_endpoint_auth_methods_supported ?? [])].sort(), [
    'client_secret_basic',
    'client_secret_post',
  ]);
  assert.ok(as.grant_types_supported?.includes('client_credentials'));
  assert.ok(as.grant_types_supported?.includes(TOKEN_EXCHANGE));
});

test('client credentials grant with client_secret_basic and client_secret_post; RFC 9068 validation', async (t) => {
  const setup = await setUp(t);
  const { as, client, secret } = setup;
  for (const auth of [oauth.ClientSecretBasic(secret), oauth.ClientSecretPost(secret)]) {
    const response = await oauth.clientCredentialsGrantRequest(as, client, auth, {}, INSECURE);
    const tokens = await oauth.processClientCredentialsResponse(as, client, response);
    assert.equal(tokens.token_type, 'bearer');
    assert.equal(typeof tokens.access_token, 'string');
    assert.ok((tokens.expires_in ?? 0) > 0);
    assert.equal(
      tokens.refresh_token,
      undefined,
      'client credentials never yields a refresh token (RFC 6749 §4.4.3)',
    );

    // A resource server validates it as an RFC 9068 JWT access token against the published JWKS.
    const request = new Request(`${API}/resource`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    const claims = await oauth.validateJwtAccessToken(as, request, API, INSECURE);
    assert.equal(claims.iss, as.issuer);
    assert.equal(claims.aud, API);
    assert.equal(claims.sub, client.client_id);
    assert.equal(claims.client_id, client.client_id);
    assert.equal(typeof claims.jti, 'string');
    assert.ok(claims.exp > claims.iat);

    // A different audience is refused by the standard validator.
    await assert.rejects(oauth.validateJwtAccessToken(as, request, 'https://other.example.com', INSECURE), {
      code: oauth.JWT_CLAIM_COMPARISON,
    });
  }

  // Wrong secret: the library surfaces the server's invalid_client with its Basic challenge.
  const bad = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    oauth.ClientSecretPost('not-the-secret'),
    {},
    INSECURE,
  );
  await assert.rejects(oauth.processClientCredentialsResponse(as, client, bad), (error: unknown) => {
    assert.ok(
      error instanceof oauth.WWWAuthenticateChallengeError || error instanceof oauth.ResponseBodyError,
    );
    if (error instanceof oauth.ResponseBodyError) assert.equal(error.error, 'invalid_client');
    else assert.equal(error.response.status, 401);
    return true;
  });
});

test('token exchange opens a session; refresh rotates; revoke and introspect through the library', async (t) => {
  const setup = await setUp(t);
  const { as, client, secret } = setup;
  const auth = oauth.ClientSecretBasic(secret);

  const exchanged = await oauth.genericTokenEndpointRequest(
    as,
    client,
    auth,
    TOKEN_EXCHANGE,
    { subject_token: 'alice', subject_token_type: SUBJECT_TOKEN_TYPE },
    INSECURE,
  );
  const session = await oauth.processGenericTokenEndpointResponse(as, client, exchanged);
  assert.equal(session.token_type, 'bearer');
  assert.equal(typeof session.refresh_token, 'string');
  assert.equal(session.issued_token_type, 'urn:ietf:params:oauth:token-type:access_token');
  const first = await oauth.validateJwtAccessToken(
    as,
    new Request(API, { headers: { authorization: `Bearer ${session.access_token}` } }),
    API,
    INSECURE,
  );
  assert.equal(first.sub, 'alice');
  assert.equal(typeof first.sid, 'string');

  // Introspection: both tokens active.
  const activeAccess = await introspect(setup, session.access_token);
  assert.equal(activeAccess.active, true);
  assert.equal(activeAccess.sub, 'alice');
  assert.equal(activeAccess.client_id, client.client_id);
  assert.equal(activeAccess.jti, first.jti);
  const activeRefresh = await introspect(setup, session.refresh_token!);
  assert.equal(activeRefresh.active, true);
  assert.equal(activeRefresh.sid, first.sid);

  // Refresh rotates: a new refresh token comes back and the old one no longer introspects active.
  const refreshed = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, auth, session.refresh_token!, INSECURE),
  );
  assert.equal(typeof refreshed.refresh_token, 'string');
  assert.notEqual(refreshed.refresh_token, session.refresh_token);
  assert.notEqual(refreshed.access_token, session.access_token);
  const second = await oauth.validateJwtAccessToken(
    as,
    new Request(API, { headers: { authorization: `Bearer ${refreshed.access_token}` } }),
    API,
    INSECURE,
  );
  assert.equal(second.sid, first.sid, 'the refreshed token belongs to the same session');
  assert.equal((await introspect(setup, session.refresh_token!)).active, false, 'rotated token is inactive');
  assert.equal((await introspect(setup, refreshed.refresh_token!)).active, true);

  // Revoke the access token (RFC 7009): 200, then introspection says inactive (and nothing else).
  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, auth, refreshed.access_token, INSECURE),
  );
  assert.deepEqual(await introspect(setup, refreshed.access_token), { active: false });
  // The session itself is untouched by revoking one access token.
  assert.equal((await introspect(setup, refreshed.refresh_token!)).active, true);

  // Revoke the refresh token with client_secret_post and a hint: the session's tokens all become inactive.
  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, oauth.ClientSecretPost(secret), refreshed.refresh_token!, {
      ...INSECURE,
      additionalParameters: { token_type_hint: 'refresh_token' },
    }),
  );
  assert.deepEqual(await introspect(setup, refreshed.refresh_token!), { active: false });
  assert.deepEqual(await introspect(setup, session.access_token), { active: false });

  // The revoked refresh token no longer refreshes.
  const afterRevoke = await oauth.refreshTokenGrantRequest(
    as,
    client,
    auth,
    refreshed.refresh_token!,
    INSECURE,
  );
  await assert.rejects(oauth.processRefreshTokenResponse(as, client, afterRevoke), (error: unknown) => {
    assert.ok(error instanceof oauth.ResponseBodyError);
    assert.equal(error.error, 'invalid_grant');
    return true;
  });

  // RFC 7009 §2.2: an unknown token is answered with 200 too.
  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, auth, 'no-such-token', INSECURE),
  );
});

test('refresh token reuse (outside the grace period) revokes the session, seen through the library', async (t) => {
  const dbPath = join(tempDataDir(), 'revokd.db');
  const server = await startServer({ dbPath, env: { REVOKD_REFRESH_REUSE_GRACE_SECONDS: '0' } });
  t.after(() => server.stop());
  const credentials = await addClientViaCli(dbPath, 'std-client');
  const issuer = new URL(server.url);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...INSECURE }),
  );
  const setup: Setup = {
    server,
    as,
    client: { client_id: credentials.client_id },
    secret: credentials.client_secret,
  };
  const { client } = setup;
  const auth = oauth.ClientSecretBasic(setup.secret);
  const session = await oauth.processGenericTokenEndpointResponse(
    as,
    client,
    await oauth.genericTokenEndpointRequest(
      as,
      client,
      auth,
      TOKEN_EXCHANGE,
      { subject_token: 'bob', subject_token_type: SUBJECT_TOKEN_TYPE },
      INSECURE,
    ),
  );
  const refreshed = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, auth, session.refresh_token!, INSECURE),
  );
  // Presenting the rotated token again is reuse: refused, and the whole session is revoked.
  const reuse = await oauth.refreshTokenGrantRequest(as, client, auth, session.refresh_token!, INSECURE);
  await assert.rejects(oauth.processRefreshTokenResponse(as, client, reuse), (error: unknown) => {
    assert.ok(error instanceof oauth.ResponseBodyError);
    assert.equal(error.error, 'invalid_grant');
    return true;
  });
  assert.deepEqual(await introspect(setup, refreshed.refresh_token!), { active: false });
  assert.deepEqual(await introspect(setup, refreshed.access_token), { active: false });
  assert.deepEqual(await introspect(setup, session.access_token), { active: false });
});
