/**
 * Allowlist mode (`tokens.allowlist: true`): every access token issued gets an `allow` entry in the durable log
 * before it is returned, and introspection accepts only tokens that have one. A token validly signed with
 * revokd's own key but never issued is inactive in allowlist mode (and active in the default mode).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { AllowRule } from '@revokd/guard';
import { decodeJwt } from 'jose';
import { loadConfig } from '../../src/config/load.ts';
import { ACCESS_TOKEN_TYP } from '../../src/services/tokens.ts';
import { API, ISSUER, startTestServer, type TestServer } from '../support/harness.ts';
import {
  admin,
  auditOf,
  clientCredentials,
  isActive,
  logRules,
  refresh,
  refreshOk,
  revoke,
} from './helpers.ts';

async function allowlistServer(t: { after(fn: () => Promise<void>): void }): Promise<TestServer> {
  const server = await startTestServer({ config: { tokens: { allowlist: true } } });
  t.after(() => server.close());
  return server;
}

/** A token signed with the server's own active key, as revokd would sign it, but never issued. */
function forge(server: TestServer, extra: Record<string, unknown> = {}): Promise<string> {
  const nowUs = Date.now() * 1000;
  const iat = Math.floor(nowUs / 1_000_000);
  return server.runtime.keyring.sign(
    {
      iss: ISSUER,
      sub: server.client.id,
      aud: API,
      exp: iat + 300,
      iat,
      iat_us: nowUs,
      jti: randomUUID(),
      client_id: server.client.id,
      scope: 'read write',
      ...extra,
    },
    ACCESS_TOKEN_TYP,
  );
}

async function allowEntries(server: TestServer): Promise<Map<string, AllowRule>> {
  const allowed = new Map<string, AllowRule>();
  for (const { rule } of await logRules(server)) if (rule.kind === 'allow') allowed.set(rule.jti, rule);
  return allowed;
}

test('tokens from all three grants introspect active, each with an allow entry living to exp + skew', async (t) => {
  const server = await allowlistServer(t);
  assert.equal(server.runtime.revocation.index.allowlist, true);
  const fromClientCredentials = await clientCredentials(server);
  const session = await server.login('alice');
  const rotated = await refreshOk(server, session.refresh_token);
  // A grace-period replay of the same refresh token yields a fresh access token: it is recorded as well.
  const replayed = await refreshOk(server, session.refresh_token);
  assert.equal(replayed.refresh_token, rotated.refresh_token);

  const issued = [fromClientCredentials, session.access_token, rotated.access_token, replayed.access_token];
  for (const token of issued) assert.equal(await isActive(server, token), true);

  const allowed = await allowEntries(server);
  assert.equal(allowed.size, issued.length, 'one allow entry per issued token, and no other');
  const skewMs = server.config.tokens.clockSkewSeconds * 1000;
  for (const token of issued) {
    const { jti, exp } = decodeJwt(token);
    assert.deepEqual(allowed.get(jti as string), {
      kind: 'allow',
      jti,
      expiresAtMs: (exp as number) * 1000 + skewMs,
    });
  }
  // The issuance audit is still written, once per token grant.
  assert.ok((await auditOf(server, 'issued')).length >= 2);
});

test('a validly signed token that revokd never issued is inactive in allowlist mode only', async (t) => {
  const server = await allowlistServer(t);
  const forged = await forge(server);
  assert.equal(await isActive(server, forged), false);
  assert.equal((await allowEntries(server)).size, 0);

  const plain = await startTestServer();
  t.after(() => plain.close());
  assert.equal(plain.runtime.revocation.index.allowlist, false);
  assert.equal(await isActive(plain, await forge(plain)), true, 'default mode: a valid signature suffices');
  // The default mode writes no allow entries and its index holds none.
  await clientCredentials(plain);
  await plain.login('bob');
  assert.equal((await allowEntries(plain)).size, 0);
  assert.equal(plain.runtime.revocation.index.size, 0);
});

test('revocation still applies to allowed tokens', async (t) => {
  const server = await allowlistServer(t);
  const own = await clientCredentials(server);
  const session = await server.login('carol');
  assert.equal(await isActive(server, own), true);
  assert.equal((await revoke(server, own)).statusCode, 200);
  assert.equal(await isActive(server, own), false);

  // Revoking the refresh token ends the family: its access token is rejected although it is allowed.
  assert.equal(await isActive(server, session.access_token), true);
  assert.equal((await revoke(server, session.refresh_token)).statusCode, 200);
  assert.equal(await isActive(server, session.access_token), false);
  const refused = await refresh(server, session.refresh_token);
  assert.equal(refused.statusCode, 400);
  // No access token was issued, so no allow entry was written for the refused refresh.
  assert.equal((await allowEntries(server)).size, 2);
});

test('admin tokens are recorded too, so the admin API works in allowlist mode', async (t) => {
  const server = await allowlistServer(t);
  const token = await server.adminToken();
  const response = await admin(server, 'GET', '/admin/guards', token);
  assert.equal(response.statusCode, 200, response.body);
  const forgedAdmin = await forge(server, {
    aud: 'urn:revokd:admin',
    scope: 'revokd:admin',
    client_id: 'ops',
    sub: 'ops',
  });
  assert.equal((await admin(server, 'GET', '/admin/guards', forgedAdmin)).statusCode, 401);
});

test('tokens.allowlist defaults to false and is set by REVOKD_ALLOWLIST', () => {
  assert.equal(loadConfig({ env: {} }).tokens.allowlist, false);
  assert.equal(loadConfig({ env: { REVOKD_ALLOWLIST: 'true' } }).tokens.allowlist, true);
  assert.equal(loadConfig({ env: { REVOKD_ALLOWLIST: 'false' } }).tokens.allowlist, false);
});
