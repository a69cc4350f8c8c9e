/**
 * Allowlist mode end to end: a real server with `tokens.allowlist: true` and a real guard with
 * `mode: 'allowlist'` on a loopback port. Issued tokens are accepted once their `allow` entry reaches the guard,
 * a validly signed token that was never issued is rejected, and revocation still applies.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { GuardOptions } from '@revokd/guard';
import { ACCESS_TOKEN_TYP } from '../src/services/tokens.ts';
import { clientCredentials, refreshOk } from './http/helpers.ts';
import { guardFor, listenOnLoopback } from './support/guard-harness.ts';
import { API, ISSUER, startTestServer, type TestServer } from './support/harness.ts';

/** Propagation bound asserted here, as in guard-feed.test.ts. */
const PROPAGATION_BOUND_MS = 2000;

/** Polls until `predicate` holds; returns how long it took, in ms. */
async function within(boundMs: number, what: string, predicate: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await predicate()) return performance.now() - started;
    if (performance.now() - started > boundMs) assert.fail(`${what}: not within ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A token signed with the server's own key, exactly as revokd would sign one, but never issued. */
function forge(server: TestServer): Promise<string> {
  const nowUs = Date.now() * 1000;
  const iat = Math.floor(nowUs / 1_000_000);
  return server.runtime.keyring.sign(
    {
      iss: ISSUER,
      sub: 'mallory',
      aud: API,
      exp: iat + 300,
      iat,
      iat_us: nowUs,
      jti: randomUUID(),
      client_id: server.client.id,
    },
    ACCESS_TOKEN_TYP,
  );
}

async function setup(t: { after(fn: () => Promise<void>): void }, mode: GuardOptions['mode']) {
  const server = await startTestServer({ config: { tokens: { allowlist: true } } });
  t.after(() => server.close());
  const base = await listenOnLoopback(server);
  const guard = guardFor(server, base, { mode });
  t.after(() => guard.close());
  await guard.ready();
  return { server, guard };
}

test('an allowlist guard accepts issued tokens once their entry arrives and rejects a never-issued one', async (t) => {
  const { server, guard } = await setup(t, 'allowlist');
  const session = await server.login('alice');
  const rotated = await refreshOk(server, session.refresh_token);
  const own = await clientCredentials(server, server.resourceServer);
  for (const [grant, token] of [
    ['token exchange', session.access_token],
    ['refresh', rotated.access_token],
    ['client credentials', own],
  ] as const) {
    const elapsed = await within(PROPAGATION_BOUND_MS, `${grant} token accepted`, async () => {
      return guard.check(`Bearer ${token}`).ok;
    });
    t.diagnostic(`${grant}: token response → accepted by the guard: ${elapsed.toFixed(1)} ms`);
  }
  assert.equal(guard.health().cursor, server.runtime.revocation.index.cursor);

  const forged = await forge(server);
  assert.deepEqual(guard.check(`Bearer ${forged}`), {
    ok: false,
    status: 401,
    error: 'invalid_token',
    reason: 'not_allowed',
  });

  // Revocation still applies to an allowed token.
  const revoked = await server.form(
    '/revoke',
    { token: rotated.access_token },
    { authorization: server.client.basic },
  );
  assert.equal(revoked.statusCode, 200);
  await within(PROPAGATION_BOUND_MS, 'revocation reaches the guard', async () => {
    const decision = guard.check(`Bearer ${rotated.access_token}`);
    return !decision.ok && decision.reason === 'revoked';
  });
  assert.equal(guard.check(`Bearer ${session.access_token}`).ok, true, 'its sibling is untouched');
});

test('a guard started later loads the allow entries from the snapshot', async (t) => {
  const server = await startTestServer({ config: { tokens: { allowlist: true } } });
  t.after(() => server.close());
  const base = await listenOnLoopback(server);
  const session = await server.login('bob');
  const guard = guardFor(server, base, { mode: 'allowlist' });
  t.after(() => guard.close());
  await guard.ready();
  assert.equal(guard.check(`Bearer ${session.access_token}`).ok, true);
  assert.equal(guard.check(`Bearer ${await forge(server)}`).ok, false);
});

test('a denylist guard on an allowlist server ignores the allow entries', async (t) => {
  const { server, guard } = await setup(t, undefined);
  const session = await server.login('carol');
  await within(PROPAGATION_BOUND_MS, 'entry applied', async () => {
    return guard.health().cursor === server.runtime.revocation.index.cursor;
  });
  assert.equal(guard.check(`Bearer ${session.access_token}`).ok, true);
  assert.equal(guard.health().activeRules, 0, 'allow entries cost a denylist guard nothing');
  assert.equal(guard.check(`Bearer ${await forge(server)}`).ok, true, 'the signature suffices');
});
