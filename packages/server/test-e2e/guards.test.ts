/**
 * DESIGN, Propagation, with real processes: `revokd serve` and three guard processes (node:http + createGuard,
 * test-e2e/support/guard-process.ts), one of them behind a TCP proxy the test can cut.
 *
 * - token, session and subject revocations reach all three guards within the bound (max recorded);
 * - a token issued after a subject not-before rule is accepted;
 * - `wait_ms` answers with all three guards in `enforced_by`, and they reject at once;
 * - a guard whose stream is cut misses 20 revocations, then catches up from its cursor, nothing skipped;
 * - the server killed with SIGKILL: guards keep deciding from their index, then apply their stale policy (503,
 *   or 200 reported stale); restarted on the same database and port, they catch up (a rule written by the CLI
 *   while it was down included) and are live again;
 * - the database restored from a backup (the guards' cursors are beyond its log): the stream answers `reset`
 *   and the guards reload a snapshot.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CuttableProxy } from '../test/support/cuttable-proxy.ts';
import {
  addClientViaCli,
  cli,
  freePort,
  type ServerProcess,
  startServer,
  tempDataDir,
} from '../test/support/process.ts';
import { type Credentials, claimsOf, clientCredentials, login, postForm } from './helpers.ts';
import { type GuardProcess, percentile, startGuard, within } from './support/guards.ts';

/** Every propagation asserted here must happen within this bound (measured values are printed). */
const PROPAGATION_BOUND_MS = 2000;
const MAX_STALENESS_MS = 1500;

function copyDatabase(fromDb: string, toDb: string): void {
  for (const suffix of ['', '-wal', '-shm']) {
    rmSync(toDb + suffix, { force: true });
    if (existsSync(fromDb + suffix)) copyFileSync(fromDb + suffix, toDb + suffix);
  }
}

test('three guard processes: propagation, receipts, a cut stream, a killed server, a restored log', async (t) => {
  const dir = tempDataDir();
  const dbPath = join(dir, 'revokd.db');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const app = await addClientViaCli(dbPath, 'app');
  const rs = await addClientViaCli(dbPath, 'rs', [
    '--grant',
    'client_credentials',
    '--audience',
    'https://api.example.com',
    '--introspect',
  ]);
  const ops = await addClientViaCli(dbPath, 'ops', [
    '--grant',
    'client_credentials',
    '--audience',
    'urn:revokd:admin',
    '--scope',
    'revokd:admin',
  ]);
  // A backup of the database as it is now: clients and keys, an empty log (restored in the last step).
  const backupDir = join(dir, 'backup');
  mkdirSync(backupDir);
  copyDatabase(dbPath, join(backupDir, 'revokd.db'));

  const port = await freePort();
  let server: ServerProcess = await startServer({ dbPath, port });
  t.after(() => server.kill9());
  const url = server.url;
  const proxy = new CuttableProxy(port);
  t.after(() => proxy.cut());
  const proxied = await proxy.start();

  const guardEnv = (id: string, stalePolicy: string, serverUrl = url) => ({
    GUARD_ISSUER: url,
    GUARD_SERVER_URL: serverUrl,
    GUARD_CLIENT_ID: rs.client_id,
    GUARD_CLIENT_SECRET: rs.client_secret,
    GUARD_ID: id,
    GUARD_MAX_STALENESS_MS: String(MAX_STALENESS_MS),
    GUARD_STALE_POLICY: stalePolicy,
  });
  const guards = await Promise.all([
    startGuard(guardEnv('guard-a', 'reject')),
    startGuard(guardEnv('guard-b', 'reject', proxied)),
    startGuard(guardEnv('guard-c', 'accept')),
  ]);
  t.after(() => Promise.all(guards.map((g) => g.stop())));
  const [guardA, guardB, guardC] = guards as [GuardProcess, GuardProcess, GuardProcess];
  const ids = guards.map((g) => g.id).sort();
  assert.deepEqual(ids, ['guard-a', 'guard-b', 'guard-c']);

  let adminToken = (await clientCredentials(url, ops)).access_token;
  const admin = async (path: string, body: unknown = { reason: 'administrative' }) => {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    assert.equal(response.status, 200, `${path}: ${text}`);
    return JSON.parse(text) as {
      cursor: number;
      enforcement?: { cursor: number; enforced_by: string[]; pending: string[]; timed_out: boolean };
    };
  };
  const revokeToken = (token: string, client: Credentials = app, extra: Record<string, string> = {}) =>
    postForm(`${server.url}/revoke`, client, { token, ...extra });

  const propagation: number[] = [];
  /** From now (a revocation just answered) until every guard rejects `token` as revoked. */
  const rejectedEverywhere = async (what: string, token: string, by: string) => {
    const started = performance.now();
    await Promise.all(
      guards.map(async (guard) => {
        await within(PROPAGATION_BOUND_MS, `${what} at ${guard.id}`, async () => {
          const { status, body } = await guard.check(token);
          return status === 401 && body.reason === 'revoked';
        });
        propagation.push(performance.now() - started);
        assert.equal((await guard.check(token)).body.revokedBy, by);
      }),
    );
  };
  const acceptedEverywhere = async (token: string) => {
    for (const guard of guards) {
      const { status, body } = await guard.check(token);
      assert.equal(status, 200, `${guard.id}: ${JSON.stringify(body)}`);
    }
  };

  await t.test('every guard is live and listed by the server', async () => {
    await within(5000, 'guards live', async () =>
      (await Promise.all(guards.map((g) => g.health()))).every((h) => h.state === 'live'),
    );
    const response = await fetch(`${url}/admin/guards`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(response.status, 200);
    const listed = (await response.json()) as { cursor: number; guards: Array<Record<string, unknown>> };
    assert.deepEqual(
      listed.guards.map((g) => [g.guard_id, g.client_id, g.lag_entries, g.streams]),
      [
        ['guard-a', 'rs', 0, 1],
        ['guard-b', 'rs', 0, 1],
        ['guard-c', 'rs', 0, 1],
      ],
    );
  });

  await t.test('token, session and subject revocations reach all three guards', async () => {
    const one = await login(url, app, 'alice');
    const session = await login(url, app, 'bob');
    const subject = [await login(url, app, 'carol'), await login(url, app, 'carol')];
    for (const token of [one, session, ...subject]) await acceptedEverywhere(token.access_token);

    const revoked = await revokeToken(one.access_token);
    assert.equal(revoked.status, 200);
    assert.equal(await revoked.text(), '', 'RFC 7009: an empty body without wait_ms');
    await rejectedEverywhere('token rule', one.access_token, 'token');

    await admin(`/admin/sessions/${claimsOf(session.access_token).sid}/revoke`);
    await rejectedEverywhere('session rule', session.access_token, 'session');

    await admin('/admin/subjects/carol/revoke', { reason: 'password_changed' });
    const after = await login(url, app, 'carol');
    await rejectedEverywhere('subject rule', subject[0]!.access_token, 'subject');
    for (const guard of guards) {
      assert.equal((await guard.check(subject[1]!.access_token)).body.revokedBy, 'subject');
    }
    // Issued after the not-before rule, within the same second: valid everywhere.
    await acceptedEverywhere(after.access_token);

    // More samples: token revocations one after another.
    for (let i = 0; i < 15; i++) {
      const { access_token: token } = await login(url, app, `sample-${i}`);
      assert.equal((await revokeToken(token)).status, 200);
      await rejectedEverywhere('token rule', token, 'token');
    }
    t.diagnostic(
      `revoke response → rejected at 3 guard processes (n=${propagation.length}, polled over HTTP): ` +
        `p50 ${percentile(propagation, 50).toFixed(1)} ms, p99 ${percentile(propagation, 99).toFixed(1)} ms, ` +
        `max ${Math.max(...propagation).toFixed(1)} ms (bound ${PROPAGATION_BOUND_MS} ms)`,
    );
  });

  await t.test('wait_ms answers once all three guards enforce the rule', async () => {
    const dave = await login(url, app, 'dave');
    const started = performance.now();
    const answer = await admin('/admin/subjects/dave/revoke?wait_ms=5000');
    const waitedMs = performance.now() - started;
    assert.deepEqual(
      answer.enforcement && {
        ...answer.enforcement,
        enforced_by: [...answer.enforcement.enforced_by].sort(),
      },
      {
        cursor: answer.cursor,
        enforced_by: ids,
        pending: [],
        timed_out: false,
      },
    );
    // Enforced means applied: no polling needed.
    for (const guard of guards)
      assert.equal((await guard.check(dave.access_token)).body.revokedBy, 'subject');

    const erin = await login(url, app, 'erin');
    const viaRfc7009 = await revokeToken(erin.access_token, app, { wait_ms: '5000' });
    assert.equal(viaRfc7009.status, 200);
    const body = (await viaRfc7009.json()) as { enforcement: { enforced_by: string[]; timed_out: boolean } };
    assert.deepEqual([...body.enforcement.enforced_by].sort(), ids);
    assert.equal(body.enforcement.timed_out, false);
    for (const guard of guards) assert.equal((await guard.check(erin.access_token)).status, 401);
    t.diagnostic(
      `admin revoke with wait_ms: answered after ${waitedMs.toFixed(1)} ms, enforced by all three`,
    );

    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /^revokd_guards_connected 3$/m);
    assert.match(metrics, /^revokd_guards_max_lag_entries 0$/m);
    const count = /^revokd_time_to_enforce_seconds_count\{kind="subject"\} (\d+)$/m.exec(metrics);
    assert.ok(count && Number(count[1]) >= 6, 'one observation per (subject rule, guard)');
  });

  await t.test('a guard whose stream is cut catches up from its cursor, nothing skipped', async () => {
    const before = await guardB.health();
    await proxy.cut();
    await within(PROPAGATION_BOUND_MS, 'the server drops the cut guard', async () => {
      const response = await fetch(`${url}/admin/guards`, {
        headers: { authorization: `Bearer ${adminToken}` },
      });
      const listed = (await response.json()) as { guards: Array<{ guard_id: string }> };
      return listed.guards.length === 2;
    });
    const sessions = await Promise.all(Array.from({ length: 20 }, (_, i) => login(url, app, `cut-${i}`)));
    for (const s of sessions) assert.equal((await revokeToken(s.access_token)).status, 200);
    // Guards connected now are the two others: a wait does not hang on the absent one.
    const frank = await login(url, app, 'frank');
    const waited = await revokeToken(frank.access_token, app, { wait_ms: '5000' });
    const { enforcement } = (await waited.json()) as {
      enforcement: { enforced_by: string[]; pending: string[] };
    };
    assert.deepEqual([...enforcement.enforced_by].sort(), ['guard-a', 'guard-c']);
    assert.deepEqual(enforcement.pending, []);
    assert.equal((await guardB.health()).cursor, before.cursor, 'the cut guard heard nothing');

    await proxy.start();
    const caughtUpMs = await within(5000, 'the cut guard catches up', async () => {
      const { status } = await guardB.check(frank.access_token);
      return status === 401;
    });
    for (const s of sessions) {
      assert.deepEqual((await guardB.check(s.access_token)).body, {
        ok: false,
        reason: 'revoked',
        revokedBy: 'token',
      });
    }
    const liveMs = await within(
      PROPAGATION_BOUND_MS,
      'live again',
      async () => (await guardB.health()).state === 'live',
    );
    const after = await guardB.health();
    const serverCursor = ((await (await fetch(`${url}/healthz`)).json()) as { cursor: number }).cursor;
    assert.equal(after.cursor, serverCursor);
    assert.equal(after.events.snapshot, before.events.snapshot, 'resumed from its cursor, no snapshot');
    assert.ok(
      after.events.resumedFrom.includes(before.cursor),
      'the new stream resumed after the old cursor',
    );
    t.diagnostic(
      `cut guard: 21 rules applied ${caughtUpMs.toFixed(0)} ms after the proxy came back (live after ${liveMs.toFixed(0)} ms more)`,
    );
  });

  await t.test('server killed: guards decide from their index, then apply their stale policy', async () => {
    const valid = await login(url, app, 'grace');
    const revoked = await login(url, app, 'heidi');
    const later = await login(url, app, 'ivan');
    await revokeToken(revoked.access_token, app, { wait_ms: '5000' });
    await within(PROPAGATION_BOUND_MS, 'live', async () =>
      (await Promise.all(guards.map((g) => g.health()))).every((h) => h.state === 'live'),
    );

    await server.kill9();
    const killedAt = performance.now();
    for (const guard of guards) {
      assert.equal((await guard.check(valid.access_token)).status, 200, `${guard.id}: valid token`);
      assert.equal((await guard.check(revoked.access_token)).status, 401, `${guard.id}: revoked token`);
    }
    const checkedWithinMs = performance.now() - killedAt;

    // Each guard's bound runs from its own last heartbeat, so they turn stale a few milliseconds apart: wait for all.
    await within(MAX_STALENESS_MS + 2000, 'every guard is stale (A and B answer 503)', async () => {
      const answers = await Promise.all([guardA, guardB].map((g) => g.check(valid.access_token)));
      return answers.every((a) => a.status === 503) && (await guardC.health()).state === 'stale';
    });
    const staleMs = performance.now() - killedAt;
    assert.deepEqual((await guardA.check(valid.access_token)).body, { ok: false, reason: 'stale' });
    const accepted = await guardC.check(valid.access_token);
    assert.deepEqual([accepted.status, accepted.body.stale], [200, true]);
    assert.equal((await guardC.health()).state, 'stale');
    for (const guard of guards) assert.equal((await guard.check(revoked.access_token)).status, 401);
    t.diagnostic(
      `after kill -9: index decisions checked within ${checkedWithinMs.toFixed(0)} ms; stale after ${staleMs.toFixed(0)} ms (bound ${MAX_STALENESS_MS} ms)`,
    );

    // Written while the server is down, straight into its database: the guards must get it after the restart.
    await cli(dbPath, ['revoke', 'subject', 'ivan', '--reason', 'suspended']);
    server = await startServer({ dbPath, port });
    const restartedAt = performance.now();
    await within(5000, 'guards live again', async () =>
      (await Promise.all(guards.map((g) => g.health()))).every((h) => h.state === 'live'),
    );
    const liveMs = performance.now() - restartedAt;
    for (const guard of guards)
      assert.equal((await guard.check(later.access_token)).body.revokedBy, 'subject');
    assert.equal((await guardA.check(valid.access_token)).status, 200, 'fresh again: valid tokens pass');
    const answer = await revokeToken(valid.access_token, app, { wait_ms: '5000' });
    const { enforcement } = (await answer.json()) as { enforcement: { enforced_by: string[] } };
    assert.deepEqual([...enforcement.enforced_by].sort(), ids);
    for (const guard of guards) assert.equal((await guard.check(valid.access_token)).status, 401);
    t.diagnostic(
      `restart on the same database and port: all guards live ${liveMs.toFixed(0)} ms after it answered`,
    );
  });

  await t.test(
    'log restored from a backup: the stream answers reset and the guards reload a snapshot',
    async () => {
      const before = await Promise.all(guards.map((g) => g.health()));
      await server.kill9();
      copyDatabase(join(backupDir, 'revokd.db'), dbPath);
      server = await startServer({ dbPath, port });
      await within(5000, 'every guard reloads a snapshot', async () => {
        const now = await Promise.all(guards.map((g) => g.health()));
        return now.every(
          (h, i) =>
            h.events.reset > before[i]!.events.reset &&
            h.events.snapshot > before[i]!.events.snapshot &&
            h.state === 'live',
        );
      });
      for (const h of await Promise.all(guards.map((g) => g.health()))) assert.equal(h.cursor, 0);
      adminToken = (await clientCredentials(url, ops)).access_token;
      const judy = await login(url, app, 'judy');
      const answer = await admin('/admin/subjects/judy/revoke?wait_ms=5000');
      assert.equal(answer.cursor, 1);
      assert.deepEqual([...(answer.enforcement?.enforced_by ?? [])].sort(), ids);
      for (const guard of guards)
        assert.equal((await guard.check(judy.access_token)).body.revokedBy, 'subject');
    },
  );
});
