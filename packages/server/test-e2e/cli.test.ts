/**
 * The operator CLI against a running server on the same SQLite file: client registration, signing-key rotation
 * and compromise, subject revocation and suspension (each picked up by the running server without a restart),
 * and usage errors that end with a clear message and a non-zero exit, never a stack trace.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  addClientViaCli,
  cli,
  cliResult,
  type ServerProcess,
  startServer,
  tempDataDir,
} from '../test/support/process.ts';
import {
  type Credentials,
  claimsOf,
  clientCredentials,
  eventually,
  headerOf,
  introspect,
  jwksKids,
  login,
  mapConcurrent,
  postForm,
  tryLogin,
} from './helpers.ts';

/** The server reloads signing keys every 1 s, and at once when a global rule (a key compromise) arrives. */
const KEY_RELOAD_BOUND_MS = 2_500;
/** The server polls the log every 1 s for rules written by other processes (the CLI). */
const LOG_POLL_BOUND_MS = 2_500;

async function serverWithClient(t: { after(fn: () => unknown): void }) {
  const dbPath = join(tempDataDir(), 'revokd.db');
  const server = await startServer({ dbPath });
  t.after(() => server.stop());
  const client = await addClientViaCli(dbPath, 'app');
  return { dbPath, server, client };
}

async function isActive(server: ServerProcess, client: Credentials, token: string): Promise<boolean> {
  return (await introspect(server.url, client, token)).active === true;
}

function lines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

// Key changes reach the running server on its key reload, so the key tests wait; they run alongside the other
// tests (each test has its own server and database).
describe('the CLI against a running server', { concurrency: true }, () => {
  describe('signing keys', { concurrency: true }, () => {
    test('key rotate and key compromise while the server runs', async (t) => {
      const { dbPath, server, client } = await serverWithClient(t);
      const k1 = ((await fetch(`${server.url}/healthz`).then((r) => r.json())) as { signingKey: string })
        .signingKey;
      const tokenA = (await clientCredentials(server.url, client)).access_token;
      assert.equal(headerOf(tokenA).kid, k1);
      assert.deepEqual(await jwksKids(server.url), [k1]);

      // rotate: the server picks the new key up by itself and signs with it; the old key stays published.
      const { kid: k2 } = JSON.parse(await cli(dbPath, ['key', 'rotate'])) as { kid: string };
      assert.notEqual(k2, k1);
      const keys = lines(await cli(dbPath, ['key', 'list']));
      assert.deepEqual(
        keys.map((k) => [k.kid, k.state]).sort(),
        [
          [k1, 'retired'],
          [k2, 'active'],
        ].sort(),
      );
      assert.ok(
        keys.every((k) => !('privateJwk' in k) && !('d' in k)),
        'key list shows no private key',
      );
      const rotationMs = await eventually(
        'the server signs with the rotated key',
        async () => headerOf((await clientCredentials(server.url, client)).access_token).kid === k2,
        { timeoutMs: KEY_RELOAD_BOUND_MS, intervalMs: 200 },
      );
      t.diagnostic(`server signed with the rotated key after ${rotationMs} ms`);
      assert.deepEqual(await jwksKids(server.url), [k2, k1], 'active key first, retired key still published');
      assert.equal(await isActive(server, client, tokenA), true, 'tokens of the retired key stay valid');
      const tokenB = (await clientCredentials(server.url, client)).access_token;
      assert.equal(headerOf(tokenB).kid, k2);

      // compromise the retired key: every token issued so far is rejected at once (global not-before rule)...
      const compromised = JSON.parse(await cli(dbPath, ['key', 'compromise', k1])) as {
        revoked: Array<{ rule: { kind: string } }>;
        activeKid: string;
      };
      assert.equal(compromised.activeKid, k2);
      assert.deepEqual(
        compromised.revoked.map((e) => e.rule.kind),
        ['global'],
      );
      const revokedMs = await eventually(
        'tokens issued before the compromise are inactive',
        async () => !(await isActive(server, client, tokenA)) && !(await isActive(server, client, tokenB)),
        { timeoutMs: LOG_POLL_BOUND_MS },
      );
      t.diagnostic(`global rule enforced by the server ${revokedMs} ms after the CLI returned`);
      // ...and the key leaves the JWKS once the server reloads its keys.
      const withdrawnMs = await eventually(
        'the compromised key leaves the JWKS',
        async () => !(await jwksKids(server.url)).includes(k1),
        { timeoutMs: KEY_RELOAD_BOUND_MS, intervalMs: 200 },
      );
      t.diagnostic(`compromised key withdrawn from /jwks.json after ${withdrawnMs} ms`);
      assert.deepEqual(await jwksKids(server.url), [k2]);
      // Tokens issued after the compromise are valid.
      const tokenC = (await clientCredentials(server.url, client)).access_token;
      assert.equal(headerOf(tokenC).kid, k2);

      assert.equal(await isActive(server, client, tokenC), true);
    });

    test('key compromise of the active key: the server moves to a new key and the old one is withdrawn', async (t) => {
      const { dbPath, server, client } = await serverWithClient(t);
      const k1 = headerOf((await clientCredentials(server.url, client)).access_token).kid as string;
      const before = (await clientCredentials(server.url, client)).access_token;
      const { activeKid: k2 } = JSON.parse(await cli(dbPath, ['key', 'compromise', k1])) as {
        activeKid: string;
      };
      assert.notEqual(k2, k1);
      await eventually(
        'tokens issued before are inactive',
        async () => !(await isActive(server, client, before)),
        {
          timeoutMs: LOG_POLL_BOUND_MS,
        },
      );
      // Until the server reloads its keys it still signs with the compromised key (see the report); measure it.
      let signedWithCompromised = 0;
      const withdrawnMs = await eventually(
        'the server stops signing with the compromised key and withdraws it',
        async () => {
          const token = (await clientCredentials(server.url, client)).access_token;
          if (headerOf(token).kid === k1) signedWithCompromised += 1;
          return headerOf(token).kid === k2 && !(await jwksKids(server.url)).includes(k1);
        },
        { timeoutMs: KEY_RELOAD_BOUND_MS, intervalMs: 200 },
      );
      t.diagnostic(
        `after compromise of the active key the server signed ${signedWithCompromised} tokens with it and ` +
          `published it for ${withdrawnMs} ms more`,
      );
      assert.deepEqual(await jwksKids(server.url), [k2]);
      const after = (await clientCredentials(server.url, client)).access_token;
      assert.equal(await isActive(server, client, after), true);
    });
  });

  describe('clients, subjects and usage', { concurrency: 1 }, () => {
    test('client add prints the secret once; it works at /token; client list and the store never show it', async (t) => {
      const { dbPath, server, client } = await serverWithClient(t);
      assert.deepEqual(Object.keys(client).sort(), ['client_id', 'client_secret']);
      assert.equal(client.client_id, 'app');
      assert.ok(client.client_secret.length >= 32, 'a high-entropy secret');

      // The secret works against the running server, added while it runs.
      const issued = await clientCredentials(server.url, client);
      assert.equal(claimsOf(issued.access_token).client_id, 'app');
      const wrong = await postForm(
        `${server.url}/token`,
        { ...client, client_secret: 'x' },
        { grant_type: 'client_credentials' },
      );
      assert.equal(wrong.status, 401);

      // client list: settings only, no secret and no secret hash.
      const listed = await cli(dbPath, ['client', 'list']);
      const [entry, ...rest] = lines(listed);
      assert.equal(rest.length, 0);
      assert.equal(entry?.id, 'app');
      assert.ok(!('secretHash' in (entry ?? {})));
      assert.doesNotMatch(listed, /sha256:|secret/i);
      assert.ok(!listed.includes(client.client_secret));

      // The secret is not stored in clear anywhere in the database files.
      for (const file of [dbPath, `${dbPath}-wal`]) {
        if (existsSync(file))
          assert.ok(!readFileSync(file).includes(client.client_secret), `${file} holds the secret`);
      }

      // Adding the same id again replaces the secret: the old one stops working at once.
      const replaced = await addClientViaCli(dbPath, 'app');
      assert.notEqual(replaced.client_secret, client.client_secret);
      const old = await postForm(`${server.url}/token`, client, { grant_type: 'client_credentials' });
      assert.equal(old.status, 401);
      await clientCredentials(server.url, replaced);

      // client remove: the client can no longer authenticate.
      await cli(dbPath, ['client', 'remove', 'app']);
      const removed = await postForm(`${server.url}/token`, replaced, { grant_type: 'client_credentials' });
      assert.equal(removed.status, 401);
    });

    test('revoke subject from the CLI is enforced by the running server within ~2 s', async (t) => {
      const { dbPath, server, client } = await serverWithClient(t);
      const alice = await login(server.url, client, 'alice');
      const aliceOther = await login(server.url, client, 'alice');
      const bob = await login(server.url, client, 'bob');
      assert.equal(await isActive(server, client, alice.access_token), true);

      const out = lines(await cli(dbPath, ['revoke', 'subject', 'alice', '--reason', 'password_changed']));
      const returned = Date.now();
      assert.equal(out.length, 1, 'revoking everything of a user is one rule');
      assert.deepEqual(out[0]?.rule, { ...(out[0]?.rule as object), kind: 'subject', sub: 'alice' });

      await eventually(
        'both of alice’s sessions are rejected',
        async () =>
          !(await isActive(server, client, alice.access_token)) &&
          !(await isActive(server, client, aliceOther.access_token)),
        { timeoutMs: LOG_POLL_BOUND_MS, intervalMs: 50 },
      );
      t.diagnostic(`subject rule enforced by the server ${Date.now() - returned} ms after the CLI returned`);
      assert.equal(await isActive(server, client, bob.access_token), true, 'other subjects are untouched');

      // Alice's refresh tokens no longer work; a fresh login right after is let in (issued after the rule).
      const refresh = await postForm(`${server.url}/token`, client, {
        grant_type: 'refresh_token',
        refresh_token: alice.refresh_token!,
      });
      assert.equal(refresh.status, 400);
      assert.equal(((await refresh.json()) as { error: string }).error, 'invalid_grant');
      const again = await login(server.url, client, 'alice');
      assert.equal(await isActive(server, client, again.access_token), true);

      // The rule is in the log the CLI reads.
      const feed = lines(await cli(dbPath, ['feed']));
      assert.ok(feed.some((e) => (e.rule as { kind: string; sub?: string }).sub === 'alice'));
    });

    test('subject suspend blocks login and refresh; reinstate lets the subject back in', async (t) => {
      const { dbPath, server, client } = await serverWithClient(t);
      const carol = await login(server.url, client, 'carol');

      await cli(dbPath, ['subject', 'suspend', 'carol']);
      const denied = await tryLogin(server.url, client, 'carol');
      assert.equal(denied.status, 400);
      assert.equal(denied.body.error, 'invalid_grant');
      assert.match(String(denied.body.error_description), /suspended/);

      const refresh = await postForm(`${server.url}/token`, client, {
        grant_type: 'refresh_token',
        refresh_token: carol.refresh_token!,
      });
      assert.equal(refresh.status, 400);
      await eventually(
        'carol’s access token is rejected',
        async () => !(await isActive(server, client, carol.access_token)),
        {
          timeoutMs: LOG_POLL_BOUND_MS,
          intervalMs: 50,
        },
      );
      assert.equal((await tryLogin(server.url, client, 'dave')).status, 200, 'other subjects still log in');

      const sessions = lines(await cli(dbPath, ['subject', 'sessions', 'carol']));
      assert.ok(
        sessions.length >= 1 && sessions.every((s) => s.endedAtMs !== undefined),
        'her sessions ended',
      );

      await cli(dbPath, ['subject', 'reinstate', 'carol']);
      const back = await login(server.url, client, 'carol');
      assert.equal(await isActive(server, client, back.access_token), true);
    });

    test('bad arguments exit non-zero with a clear message and no stack trace', async (t) => {
      const dbPath = join(tempDataDir(), 'revokd.db');
      await addClientViaCli(dbPath, 'existing');
      const cases: Array<{ args: string[]; code?: number; message: RegExp }> = [
        { args: [], code: 2, message: /usage: revokd/ },
        { args: ['frobnicate'], code: 2, message: /unknown command "frobnicate"/ },
        { args: ['client'], message: /missing action/ },
        { args: ['client', 'frob'], message: /unknown client action frob/ },
        { args: ['client', 'add'], message: /missing client id/ },
        {
          args: ['client', 'add', 'x', '--grant', 'bogus', '--audience', 'a'],
          message: /unknown grant bogus/,
        },
        { args: ['client', 'add', 'x', '--grant', 'client_credentials'], message: /--audience/ },
        { args: ['client', 'add', 'x', '--audience', 'a'], message: /--grant/ },
        {
          args: [
            'client',
            'add',
            'x',
            '--grant',
            'client_credentials',
            '--audience',
            'a',
            '--access-token-ttl',
            'abc',
          ],
          message: /accessTokenTtlSeconds/,
        },
        {
          args: [
            'client',
            'add',
            'x',
            '--grant',
            'client_credentials',
            '--audience',
            'a',
            '--access-token-ttl',
            '99999',
          ],
          message: /access-token-ttl|accessTokenTtlSeconds/,
        },
        {
          args: ['client', 'add', 'has space', '--grant', 'client_credentials', '--audience', 'a'],
          message: /id: must be printable ASCII without spaces/,
        },
        {
          args: [
            'client',
            'add',
            'x',
            '--grant',
            'client_credentials',
            '--audience',
            'a',
            '--backchannel-logout-uri',
            'nope',
          ],
          message: /backchannelLogoutUri/,
        },
        { args: ['client', 'remove', 'nobody'], message: /no client nobody/ },
        { args: ['key'], message: /missing action/ },
        { args: ['key', 'frob'], message: /unknown key action frob/ },
        { args: ['key', 'compromise'], message: /missing kid/ },
        { args: ['key', 'compromise', 'no-such-kid'], message: /no signing key no-such-kid/ },
        { args: ['revoke'], message: /missing what to revoke/ },
        { args: ['revoke', 'planet'], message: /cannot revoke "planet"/ },
        { args: ['revoke', 'subject'], message: /missing subject/ },
        { args: ['revoke', 'subject', 'alice', '--reason', 'bored'], message: /--reason must be one of/ },
        { args: ['revoke', 'session', 'no-such-session'], message: /no such session/ },
        { args: ['revoke', 'claim', 'role'], message: /missing value/ },
        { args: ['subject', 'suspend'], message: /missing subject/ },
        { args: ['subject', 'frob', 'alice'], message: /unknown subject action frob/ },
        { args: ['feed', '--limit', 'abc'], message: /--limit must be a non-negative integer/ },
        { args: ['feed', '--after', '-1'], message: /--after/ },
        { args: ['audit', '--limit', 'many'], message: /--limit must be a non-negative integer/ },
        { args: ['feed', '--bogus'], message: /Unknown option '--bogus'/ },
        { args: ['migrate', '--config', '/nonexistent/revokd.json'], message: /cannot read config file/ },
      ];
      const results = await mapConcurrent(cases, 2, ({ args }) => cliResult(dbPath, args));
      cases.forEach(({ args, code = 1, message }, i) => {
        const result = results[i]!;
        const what = `revokd ${args.join(' ')}`;
        assert.equal(result.code, code, `${what}: exit code (stderr: ${result.stderr})`);
        assert.match(result.stderr + result.stdout, message, what);
        assert.doesNotMatch(result.stderr, /\n\s+at /, `${what}: no stack trace`);
      });
      // Nothing was registered by the rejected `client add` calls.
      assert.deepEqual(
        lines(await cli(dbPath, ['client', 'list'])).map((c) => c.id),
        ['existing'],
      );
      t.diagnostic(`${cases.length} usage errors checked`);
    });

    test('an invalid REVOKD_* value makes every command fail naming the key', async () => {
      const dbPath = join(tempDataDir(), 'revokd.db');
      const result = await cliResult(dbPath, ['migrate'], { REVOKD_ACCESS_TOKEN_TTL_SECONDS: '0' });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /tokens\.accessTokenTtlSeconds/);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    });
  });
});
