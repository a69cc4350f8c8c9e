/**
 * The store conformance kit against PostgresStore on a real PostgreSQL server (a fresh database per case), plus
 * what only a store shared by several nodes must promise: commit-ordered gapless cursors, atomic rotation and
 * suspension across nodes, notifications, migrations, and surviving PostgreSQL's failures.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { after, describe, test } from 'node:test';
import type { LogEntry, Rule } from '@revokd/guard';
import pg from 'pg';
import { parseConfig } from '../../src/config/load.ts';
import { isRevokdError } from '../../src/core/errors.ts';
import { createRuntime } from '../../src/runtime.ts';
import type { ClientRecord, OpenSessionInput, RevocationRequest, RotateInput } from '../../src/store/port.ts';
import { MIGRATIONS, migratePostgres, SCHEMA_VERSION } from '../../src/store/postgres/migrations.ts';
import { PostgresStore, type PostgresStoreOptions } from '../../src/store/postgres/postgres-store.ts';
import { WriteBatcher } from '../../src/store/postgres/write-batcher.ts';
import { type PostgresServer, startPostgres } from '../support/postgres.ts';
import { freePort } from '../support/process.ts';
import { storeConformance } from './conformance.ts';

let shared: Promise<PostgresServer> | undefined;
/** One server for the cases that do not stop it, started on first use. */
const server = (): Promise<PostgresServer> => (shared ??= startPostgres());
after(async () => {
  await spare?.catch(() => {});
  await (await shared)?.destroy();
});

let databases = 0;
let spare: Promise<{ url: string; drop: () => Promise<void> }> | undefined;

/**
 * A fresh database: empty, or migrated (a copy of one database migrated once, which is faster than migrating).
 * The next migrated one is created while the current test runs.
 */
async function freshDatabase(
  options: { migrated?: boolean } = {},
): Promise<{ url: string; drop: () => Promise<void> }> {
  const create = async (template?: string) => {
    const postgres = await server();
    const name = `test_${++databases}`;
    const url = await postgres.createDatabase(name, { template });
    return { url, drop: () => postgres.dropDatabase(name) };
  };
  if (!options.migrated) return create();
  const template = await migratedTemplate();
  const next = spare ?? create(template);
  spare = create(template);
  spare.catch(() => {}); // reported when taken
  return next;
}

let template: Promise<string> | undefined;
const migratedTemplate = (): Promise<string> =>
  (template ??= (async () => {
    const name = 'migrated_template';
    await migratePostgres(await (await server()).createDatabase(name));
    return name;
  })());

storeConformance('PostgresStore', async ({ onLogAppended }) => {
  const { url, drop } = await freshDatabase({ migrated: true });
  const options: PostgresStoreOptions = { url, onLogAppended };
  let current = await PostgresStore.open(options);
  return {
    store: current,
    reopen: async () => {
      current = await PostgresStore.open(options);
      return current;
    },
    cleanup: async () => {
      await current.close();
      await drop();
    },
  };
});

// --- PostgreSQL only ---

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const tokenRule = (jti: string): Rule => ({ kind: 'token', jti, expiresAtMs: T0 + HOUR });
const jtiOf = (entry: LogEntry): string =>
  entry.rule.kind === 'token' ? entry.rule.jti : `?${entry.rule.kind}`;
const revocation = (
  rules: readonly Rule[],
  overrides: Partial<RevocationRequest> = {},
): RevocationRequest => ({
  rules,
  effects: [],
  reason: 'test',
  nowMs: T0,
  audit: [],
  ...overrides,
});

function sessionInput(sid: string, subject = 'alice', clientId = 'app'): OpenSessionInput {
  return {
    session: {
      sid,
      subject,
      clientId,
      scope: 'read',
      audience: ['https://api.example.com'],
      claims: {},
      createdAtMs: T0,
      lastUsedAtMs: T0,
      absoluteExpiresAtMs: T0 + 90 * DAY,
    },
    familyId: `fam-${sid}`,
    refreshTokenHash: `rt-${sid}`,
    audit: [],
  };
}

function rotation(presentedHash: string, graceMs: number): RotateInput {
  const nowMs = T0 + 1000;
  return {
    presentedHash,
    successorHash: `${presentedHash}+`,
    clientId: 'app',
    nowMs,
    policy: { graceMs, idleTtlMs: 14 * DAY },
    reuseRules: ({ sid, fid }) => [
      { kind: 'family', fid, expiresAtMs: nowMs + HOUR },
      { kind: 'session', sid, expiresAtMs: nowMs + HOUR },
    ],
    audit: () => [],
  };
}

const appClient = (backchannelLogoutUri?: string): ClientRecord => ({
  id: 'app',
  secretHash: 'sha256:app',
  grants: ['refresh_token'],
  audiences: ['https://api.example.com'],
  scopes: ['read'],
  accessTokenTtlSeconds: undefined,
  backchannelLogoutUri,
  canIntrospect: false,
  sessionClaims: [],
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

function assertUnavailable(error: unknown): true {
  assert.ok(isRevokdError(error), `a RevokdError, got ${String(error)}`);
  assert.equal(error.code, 'REVOKD_STORE_UNAVAILABLE', error.message);
  return true;
}

/** A store on `url` that records what it announces and how often it hears of remote commits. */
async function node(t: TestContext, url: string, extra: Partial<PostgresStoreOptions> = {}) {
  const announced: LogEntry[] = [];
  const heard = { remote: 0 };
  const store = await PostgresStore.open({
    url,
    onLogAppended: (entries) => announced.push(...entries),
    onRemoteCommit: () => heard.remote++,
    ...extra,
  });
  t.after(() => store.close());
  return { store, announced, heard };
}

/** Two nodes (and a third store, when asked) on one fresh, migrated database. */
async function cluster(t: TestContext, options: { third?: boolean } = {}) {
  const { url, drop } = await freshDatabase({ migrated: true });
  const a = await node(t, url);
  const b = await node(t, url);
  const c = options.third ? await node(t, url) : undefined;
  // After hooks run in the order they were added: the stores close before their database goes.
  t.after(drop);
  return { url, a, b, c };
}

describe('PostgresStore across nodes', () => {
  test('cursors are gapless and in commit order across two nodes; a reader polling meanwhile misses nothing', async (t) => {
    const { a, b, c: reader } = await cluster(t, { third: true });
    assert.ok(reader);
    const returned: LogEntry[] = [];
    let writing = true;
    // Several writers per node, so each node commits batches while the other is inside its transactions.
    const worker = async (store: PostgresStore, name: string) => {
      for (let i = 0; i < 40; i++) {
        const rules = Array.from({ length: 1 + (i % 3) }, (_, k) => tokenRule(`${name}-${i}-${k}`));
        returned.push(...(await store.revoke(revocation(rules))));
      }
    };
    const seen: LogEntry[] = [];
    const polling = (async () => {
      let cursor = 0;
      for (;;) {
        const stillWriting = writing;
        const page = await reader.store.readLog(cursor, 25);
        for (const entry of page) {
          assert.ok(entry.cursor > cursor, `cursor ${entry.cursor} after ${cursor}`);
          cursor = entry.cursor;
          seen.push(entry);
        }
        if (page.length === 0 && !stillWriting) return;
      }
    })();
    await Promise.all(
      ['a1', 'a2', 'a3', 'a4', 'b1', 'b2', 'b3', 'b4'].map((name) =>
        worker(name.startsWith('a') ? a.store : b.store, name),
      ),
    );
    writing = false;
    await polling;

    const log = await a.store.readLog(0, 100_000);
    assert.equal(log.length, 8 * (14 * 1 + 13 * 2 + 13 * 3));
    assert.deepEqual(
      log.map((e) => e.cursor),
      log.map((_, i) => i + 1),
      'gapless from 1',
    );
    assert.deepEqual(await b.store.readLog(0, 100_000), log);
    assert.deepEqual(seen, log, 'the polling reader saw every entry, in order');
    const byCursor = (x: LogEntry, y: LogEntry) => x.cursor - y.cursor;
    assert.deepEqual(
      [...returned].sort(byCursor),
      log,
      'every writer got its entries at their log positions',
    );
    // Each node announced exactly its own commits, in cursor order.
    for (const { announced } of [a, b]) {
      for (let i = 1; i < announced.length; i++) assert.ok(announced[i]!.cursor > announced[i - 1]!.cursor);
    }
    assert.deepEqual([...a.announced, ...b.announced].sort(byCursor), log);
    assert.equal((await reader.store.snapshot(T0)).cursor, log.length);
  });

  test('50 rotations of one refresh token split over two nodes converge as on one node', async (t) => {
    const { a, b } = await cluster(t);
    await a.store.openSession(sessionInput('s1'));
    await a.store.openSession(sessionInput('s2'));
    const nodes = [a.store, b.store];

    // Within the grace period: one rotation, 49 replays of it, one successor.
    const graced = await Promise.all(
      Array.from({ length: 50 }, (_, i) => nodes[i % 2]!.rotateRefreshToken(rotation('rt-s1', 30_000))),
    );
    const kinds = graced.map((o) => o.kind);
    assert.equal(kinds.filter((k) => k === 'rotated').length, 1);
    assert.equal(kinds.filter((k) => k === 'replayed').length, 49);
    const successor = await b.store.findRefreshToken('rt-s1+');
    assert.deepEqual(
      [successor?.fid, successor?.rotated, successor?.familyRevoked],
      ['fam-s1', false, false],
    );
    assert.equal(await a.store.findRefreshToken('rt-s1++'), undefined);
    assert.deepEqual(await a.store.readLog(0, 100), []);

    // With grace 0: one rotation; every other presentation is reuse (or, once reuse ended the family, revoked).
    const strict = await Promise.all(
      Array.from({ length: 50 }, (_, i) => nodes[i % 2]!.rotateRefreshToken(rotation('rt-s2', 0))),
    );
    assert.equal(strict.filter((o) => o.kind === 'rotated').length, 1);
    assert.equal(strict.filter((o) => o.kind === 'replayed').length, 0);
    const reuses = strict.filter((o) => o.kind === 'reuse');
    assert.ok(reuses.length >= 1);
    for (const o of strict) if (o.kind === 'rejected') assert.equal(o.reason, 'revoked');
    assert.equal((await b.store.getSession('s2'))?.endedAtMs, T0 + 1000);
    assert.equal((await a.store.findRefreshToken('rt-s2+'))?.familyRevoked, true);
    const log = await a.store.readLog(0, 100);
    assert.deepEqual(
      log,
      reuses.flatMap((o) => o.entries).sort((x, y) => x.cursor - y.cursor),
    );
  });

  test('a session opened on one node while another suspends its subject is ended, or never opens', async (t) => {
    const { a, b } = await cluster(t);
    for (let round = 0; round < 8; round++) {
      const subject = `user-${round}`;
      const opening = Array.from({ length: 12 }, (_, i) =>
        a.store.openSession(sessionInput(`${subject}-s${i}`, subject)),
      );
      await sleep(round % 4);
      const suspension = b.store.revoke(
        revocation([], {
          effects: [
            { kind: 'end-subject-sessions', subject },
            { kind: 'suspend-subject', subject },
          ],
        }),
      );
      const outcomes = await Promise.all(opening);
      await suspension;
      const sessions = await a.store.listSessions(subject, { includeEnded: true, nowMs: T0 });
      assert.deepEqual(
        sessions.filter((s) => s.endedAtMs === undefined).map((s) => s.sid),
        [],
        'no live session of a suspended subject',
      );
      assert.equal(sessions.length, outcomes.filter((o) => o.kind === 'opened').length);
    }
  });

  test('a transaction that loses a deadlock to another node is retried as a whole and commits once', async (t) => {
    const { url, a } = await cluster(t);
    await a.store.openSession(sessionInput('s1', 'u1'));
    await a.store.openSession(sessionInput('s2', 'u2'));
    // Another node's transaction, driven by hand; it never gives up first (its deadlock check would come late).
    const other = new pg.Client({ connectionString: url });
    other.on('error', () => {});
    await other.connect();
    t.after(() => other.end());
    await other.query(`SET deadlock_timeout = '10s'`);
    await other.query('BEGIN');
    await other.query(`SELECT 1 FROM revokd_sessions WHERE sid = 's2' FOR UPDATE`);
    // This node ends s1, then waits for s2...
    const revoking = a.store.revoke(
      revocation([tokenRule('j1')], {
        effects: [
          { kind: 'end-session', sid: 's1' },
          { kind: 'end-session', sid: 's2' },
        ],
        audit: [{ type: 'revoked', atMs: T0, actor: 'cli', jti: 'j1' }],
      }),
    );
    const monitor = new pg.Client({ connectionString: url });
    await monitor.connect();
    await until('the revocation waits for s2', async () => {
      const { rows } = await monitor.query(
        `SELECT 1 FROM pg_stat_activity WHERE application_name = 'revokd' AND wait_event_type = 'Lock'`,
      );
      return rows.length > 0;
    });
    await monitor.end();
    // ...and the other transaction now wants s1: a deadlock, which PostgreSQL breaks by aborting this node's.
    await other.query(`UPDATE revokd_sessions SET end_reason = 'other' WHERE sid = 's1'`);
    await other.query('COMMIT');
    const entries = await revoking;
    assert.deepEqual(entries.map(jtiOf), ['j1']);
    assert.deepEqual(await a.store.readLog(0, 10), entries);
    assert.deepEqual(
      (await a.store.readAudit({ limit: 10 })).map((e) => e.jti),
      ['j1'],
    );
    const s1 = await a.store.getSession('s1');
    assert.deepEqual([s1?.endedAtMs, s1?.endReason], [T0, 'test']);
    assert.equal((await a.store.getSession('s2'))?.endedAtMs, T0);
  });

  test('logout deliveries claimed from two nodes at once are handed out once each', async (t) => {
    const { a, b } = await cluster(t);
    await a.store.saveClient(appClient('https://app.example.com/logout'));
    for (let i = 0; i < 30; i++) await a.store.openSession(sessionInput(`s${i}`, `user-${i}`));
    await a.store.revoke(revocation([], { effects: [{ kind: 'end-all-sessions' }] }));
    const claimed: string[] = [];
    const dispatcher = async (store: PostgresStore) => {
      for (;;) {
        const batch = await store.claimLogoutDeliveries(T0, 2, 60_000);
        if (batch.length === 0) return;
        claimed.push(...batch.map((d) => d.sid));
      }
    };
    await Promise.all([dispatcher(a.store), dispatcher(b.store), dispatcher(a.store), dispatcher(b.store)]);
    assert.equal(claimed.length, 30);
    assert.equal(new Set(claimed).size, 30);
  });

  test('getOrCreateSecret agrees on one value across nodes', async (t) => {
    const { a, b } = await cluster(t);
    const values = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        [a.store, b.store][i % 2]!.getOrCreateSecret('key', () => `v${i}`),
      ),
    );
    assert.equal(new Set(values).size, 1);
  });

  test('two nodes starting at once on an empty store agree on one signing key; concurrent rotations leave one active', async (t) => {
    const { url, drop } = await freshDatabase({ migrated: true });
    t.after(drop);
    const config = parseConfig({
      issuer: 'https://auth.example',
      store: { kind: 'postgres', url },
      log: { level: 'silent' },
    });
    const [first, second] = await Promise.all([
      createRuntime(config, { follow: false }),
      createRuntime(config, { follow: false }),
    ]);
    t.after(() => Promise.all([first.close(), second.close()]));
    assert.equal(first.keyring.activeKid, second.keyring.activeKid);
    const rotations = await Promise.allSettled([first.keyring.rotate('a'), second.keyring.rotate('b')]);
    assert.ok(rotations.some((r) => r.status === 'fulfilled'));
    for (const r of rotations) {
      if (r.status === 'rejected')
        assert.equal((r.reason as { code?: string }).code, 'REVOKD_STORE_CONFLICT');
    }
    const keys = await first.store.listSigningKeys();
    assert.equal(keys.filter((key) => key.state === 'active').length, 1);
  });

  test('a client changed or deleted on one node is seen by the other at once, though it caches client records', async (t) => {
    const { a, b } = await cluster(t);
    await a.store.saveClient(appClient());
    // The save's notification reaches B (emptying its cache) in a moment: read after it.
    await sleep(200);
    const first = await b.store.getClient('app');
    assert.equal(first?.secretHash, appClient().secretHash);
    assert.equal(await b.store.getClient('app'), first, 'the second read is served from the cache');
    await a.store.saveClient({ ...appClient(), secretHash: 'sha256:rotated' });
    await until(
      'node B sees the rotated secret',
      async () => (await b.store.getClient('app'))?.secretHash === 'sha256:rotated',
      2000,
    );
    assert.equal(await a.store.deleteClient('app'), true);
    await until('node B sees the deletion', async () => (await b.store.getClient('app')) === undefined, 2000);
    // The writer's own cache is emptied by its own write, without waiting for the notification.
    await b.store.saveClient(appClient());
    assert.ok(await a.store.getClient('app'));
    await b.store.deleteClient('app');
    await until('node A sees the deletion', async () => (await a.store.getClient('app')) === undefined, 2000);
    assert.equal(await b.store.getClient('app'), undefined, 'node B, which deleted it, at once');
  });

  test('a commit on one node is reported to the other by NOTIFY, not to itself', async (t) => {
    const { url, a, b } = await cluster(t);
    await a.store.revoke(revocation([tokenRule('j1')]));
    await until('b hears of it', () => b.heard.remote === 1);
    // A session opening with an allow entry and a rotation notify too; a write without entries does not.
    await b.store.openSession({
      ...sessionInput('s1'),
      allow: { kind: 'allow', jti: 'j2', expiresAtMs: T0 + HOUR },
    });
    await until('a hears of it', () => a.heard.remote === 1);
    await b.store.saveClient(appClient());
    // Another process (a CLI) committing is reported to both.
    const cli = await PostgresStore.open({ url });
    await cli.revoke(revocation([tokenRule('j3')]));
    await cli.close();
    await until('both hear of the CLI', () => a.heard.remote === 2 && b.heard.remote === 2);
    await sleep(100);
    assert.deepEqual([a.heard.remote, b.heard.remote], [2, 2], 'no node heard of its own commits');
  });
});

describe('PostgreSQL write batches', () => {
  async function batcher(t: TestContext, concurrency: number) {
    const { url, drop } = await freshDatabase({ migrated: true });
    const pool = new pg.Pool({ connectionString: url, pipeline: true, max: concurrency + 1 });
    const announced: LogEntry[] = [];
    const writer = new WriteBatcher({
      pool,
      concurrency,
      notifyPayload: 'test',
      committed: (entries) => announced.push(...entries),
      commitInDoubt: () => assert.fail('no commit is in doubt here'),
    });
    const store = await PostgresStore.open({ url });
    t.after(async () => {
      await writer.idle();
      await pool.end();
      await store.close();
      await drop();
    });
    return { writer, announced, store };
  }
  const audited = (jti: string) => [{ type: 'revoked' as const, atMs: T0, actor: 'test', jti }];

  test('a statement sent without waiting that fails fails its own write, with its own error; the batch commits the rest', async (t) => {
    const { writer, announced, store } = await batcher(t, 1);
    const results = await Promise.allSettled([
      writer.write(async (tx) => {
        tx.audit(audited('a'));
        return tx.append([tokenRule('a')], 'test', T0);
      }),
      writer.write(async (tx) => {
        tx.audit(audited('b'));
        const entries = tx.append([tokenRule('b')], 'test', T0);
        tx.send('SELECT 1 / $1::int', [0]);
        await tx.query('SELECT $1::int', [1]); // refused: the transaction is aborted since the division
        return entries;
      }),
      writer.write(async (tx) => {
        tx.audit(audited('c'));
        return tx.append([tokenRule('c')], 'test', T0);
      }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    const failure = (results[1] as PromiseRejectedResult).reason;
    assert.equal(
      failure.code,
      '22012',
      `the division's own error (division_by_zero), got ${failure.message}`,
    );
    const log = await store.readLog(0, 10);
    assert.deepEqual(log.map(jtiOf), ['a', 'c']);
    assert.deepEqual(log, [
      ...(results[0] as PromiseFulfilledResult<LogEntry[]>).value,
      ...(results[2] as PromiseFulfilledResult<LogEntry[]>).value,
    ]);
    assert.deepEqual(announced, log);
    assert.deepEqual(
      (await store.readAudit({ limit: 10 })).map((e) => e.jti),
      ['a', 'c'],
      "the failed write's audit events are not written",
    );
  });

  test('writes from many turns of the event loop run in concurrent batches: each committed once, cursors gapless', async (t) => {
    const { writer, announced, store } = await batcher(t, 4);
    const writes: Array<Promise<LogEntry[]>> = [];
    for (let turn = 0; turn < 40; turn++) {
      for (let i = 0; i < 5; i++) {
        const jti = `j${turn}-${i}`;
        writes.push(
          writer.write(async (tx) => {
            tx.audit(audited(jti));
            return tx.append([tokenRule(jti)], 'test', T0);
          }),
        );
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const entries = (await Promise.all(writes)).flat();
    const log = await readAll(store);
    assert.deepEqual(
      log.map((e) => e.cursor),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      [...entries].sort((x, y) => x.cursor - y.cursor),
      log,
    );
    assert.deepEqual(
      [...announced].sort((x, y) => x.cursor - y.cursor),
      log,
    );
    assert.equal((await store.readAudit({ limit: 500 })).length, 200);
  });
});

async function readAll(store: PostgresStore): Promise<LogEntry[]> {
  const log: LogEntry[] = [];
  for (;;) {
    const page = await store.readLog(log.at(-1)?.cursor ?? 0, 100);
    if (page.length === 0) return log;
    log.push(...page);
  }
}

describe('PostgreSQL migrations', () => {
  test('open() refuses an unmigrated database and says to run revokd migrate', async (t) => {
    const { url, drop } = await freshDatabase();
    t.after(drop);
    await assert.rejects(PostgresStore.open({ url }), (error: unknown) => {
      assert.ok(isRevokdError(error));
      assert.equal(error.code, 'REVOKD_STORE_SCHEMA');
      assert.match(error.message, /version 0.*run `revokd migrate`/);
      return true;
    });
  });

  test('concurrent migrations apply each version once; later runs apply nothing', async (t) => {
    const { url, drop } = await freshDatabase();
    t.after(drop);
    const results = await Promise.all(Array.from({ length: 4 }, () => migratePostgres(url)));
    assert.deepEqual(
      results.filter((r) => r.from === 0),
      [{ from: 0, to: SCHEMA_VERSION }],
    );
    assert.deepEqual(
      results.filter((r) => r.from !== 0),
      Array.from({ length: 3 }, () => ({ from: SCHEMA_VERSION, to: SCHEMA_VERSION })),
    );
    assert.deepEqual(await migratePostgres(url), { from: SCHEMA_VERSION, to: SCHEMA_VERSION });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query('SELECT version FROM revokd_schema_migrations ORDER BY version');
    await client.end();
    assert.deepEqual(
      rows.map((r) => r.version),
      MIGRATIONS.map((m) => m.version),
    );
    const store = await PostgresStore.open({ url });
    assert.deepEqual(await store.readLog(0, 10), []);
    await store.close();
  });

  test('a database migrated by a newer revokd is refused by open() and migrate', async (t) => {
    const { url, drop } = await freshDatabase();
    t.after(drop);
    await migratePostgres(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`INSERT INTO revokd_schema_migrations (version, description) VALUES ($1, 'future')`, [
      SCHEMA_VERSION + 1,
    ]);
    await client.end();
    const newer = (error: unknown) => {
      assert.ok(isRevokdError(error));
      assert.equal(error.code, 'REVOKD_STORE_SCHEMA');
      assert.match(error.message, /newer than this revokd/);
      return true;
    };
    await assert.rejects(PostgresStore.open({ url }), newer);
    await assert.rejects(migratePostgres(url), newer);
  });

  test('an unreachable server is REVOKD_STORE_UNAVAILABLE for open() and migrate', async () => {
    const url = `postgres://postgres@127.0.0.1:${await freePort()}/nowhere`;
    await assert.rejects(PostgresStore.open({ url, connectTimeoutMs: 1000 }), assertUnavailable);
    await assert.rejects(migratePostgres(url), assertUnavailable);
  });
});

describe('PostgresStore when PostgreSQL fails', () => {
  /** A server of its own: these cases stop, kill and freeze it. */
  let own: Promise<PostgresServer> | undefined;
  const failing = (): Promise<PostgresServer> => (own ??= startPostgres());
  after(async () => {
    await (await own)?.destroy();
  });

  async function failingCluster(t: TestContext, extra: Partial<PostgresStoreOptions> = {}) {
    const server = await failing();
    if (!server.running) await server.restart();
    const url = await server.createDatabase();
    await migratePostgres(url);
    return { server, url, a: await node(t, url, extra), b: await node(t, url, extra) };
  }

  test('stopped: every operation rejects with REVOKD_STORE_UNAVAILABLE and writes nothing; restarted: the same store carries on and LISTEN resumes', async (t) => {
    const { server, a, b } = await failingCluster(t);
    await a.store.saveClient(appClient());
    await a.store.openSession(sessionInput('s1'));
    const [before] = await a.store.revoke(revocation([tokenRule('before')]));
    await until('b hears of it', () => b.heard.remote === 1);

    await server.stop();
    const started = Date.now();
    const attempts = await Promise.allSettled([
      a.store.revoke(
        revocation([tokenRule('while-down')], { effects: [{ kind: 'end-session', sid: 's1' }] }),
      ),
      a.store.saveClient({ ...appClient(), id: 'while-down' }),
      a.store.openSession(sessionInput('s2')),
      a.store.rotateRefreshToken(rotation('rt-s1', 30_000)),
      a.store.appendAudit([{ type: 'introspected', atMs: T0, actor: 'api' }]),
      a.store.claimLogoutDeliveries(T0, 10, 1000),
      a.store.getClient('app'),
      a.store.readLog(0, 10),
      a.store.snapshot(T0),
      a.store.readAudit({ limit: 10 }),
      b.store.revoke(revocation([tokenRule('while-down-b')])),
    ]);
    for (const attempt of attempts) {
      assert.equal(attempt.status, 'rejected');
      if (attempt.status === 'rejected') assertUnavailable(attempt.reason);
    }
    assert.ok(Date.now() - started < 5_000, `failed in ${Date.now() - started} ms, not hanging`);
    assert.deepEqual(a.announced, [before]);
    await until('the LISTEN connections notice', () => !a.store.listening && !b.store.listening);

    await server.restart();
    // Once listening again, each node reports a remote commit: notifications may have been missed meanwhile.
    await until('a listens again', () => a.store.listening && a.heard.remote >= 1);
    await until('b listens again', () => b.store.listening && b.heard.remote >= 2);
    assert.deepEqual(await a.store.readLog(0, 10), [before]);
    assert.equal(await a.store.getClient('while-down'), undefined);
    assert.equal((await a.store.getSession('s1'))?.endedAtMs, undefined);
    assert.equal(await a.store.getSession('s2'), undefined);
    assert.equal((await a.store.findRefreshToken('rt-s1'))?.rotated, false);
    assert.deepEqual(await a.store.readAudit({ limit: 10 }), []);

    const heardByA = a.heard.remote;
    const heardByB = b.heard.remote;
    const [after] = await a.store.revoke(revocation([tokenRule('after')]));
    assert.equal(after!.cursor, before!.cursor + 1);
    await until('b hears of it through the new LISTEN connection', () => b.heard.remote === heardByB + 1);
    assert.equal((await b.store.rotateRefreshToken(rotation('rt-s1', 30_000))).kind, 'rotated');
    await b.store.revoke(revocation([tokenRule('from-b')]));
    await until('a hears of it through the new LISTEN connection', () => a.heard.remote === heardByA + 1);
  });

  test('frozen: operations fail within the configured timeouts instead of hanging, and recover after', async (t) => {
    const { server, a } = await failingCluster(t, { connectTimeoutMs: 300, statementTimeoutMs: 300 });
    await a.store.revoke(revocation([tokenRule('before')]));
    server.freeze();
    t.after(() => server.thaw());
    const started = Date.now();
    const attempts = await Promise.allSettled([
      a.store.revoke(revocation([tokenRule('frozen')])),
      a.store.readLog(0, 10),
      a.store.getClient('app'),
    ]);
    const elapsed = Date.now() - started;
    for (const attempt of attempts) {
      assert.equal(attempt.status, 'rejected');
      if (attempt.status === 'rejected') assertUnavailable(attempt.reason);
    }
    assert.ok(elapsed < 4_000, `failed after ${elapsed} ms`);
    server.thaw();
    await until('the store works again', async () => {
      try {
        await a.store.revoke(revocation([tokenRule('after')]));
        return true;
      } catch (error) {
        assertUnavailable(error);
        return false;
      }
    });
    const jtis = (await a.store.readLog(0, 10)).map(jtiOf);
    assert.equal(jtis[0], 'before');
    assert.equal(jtis.at(-1), 'after');
    // 'frozen' may or may not have committed (PostgreSQL may finish it once thawed); never twice, never partly.
    assert.ok(jtis.filter((j) => j === 'frozen').length <= 1);
  });

  test('killed -9 in the middle of writes: each revocation is wholly there or wholly absent, and every answered one is there', async (t) => {
    const { server, a } = await failingCluster(t);
    await a.store.saveClient(appClient('https://app.example.com/logout'));
    const N = 400;
    for (let i = 0; i < N; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, k) => a.store.openSession(sessionInput(`s${i + k}`, `u${i + k}`))),
      );
    }
    const results: Array<PromiseSettledResult<LogEntry[]> | undefined> = [];
    let next = 0;
    const worker = async () => {
      while (next < N) {
        const i = next++;
        try {
          const entries = await a.store.revoke(
            revocation([tokenRule(`j${i}`)], {
              effects: [{ kind: 'end-session', sid: `s${i}` }],
              audit: [{ type: 'revoked', atMs: T0, actor: 'cli', jti: `j${i}` }],
            }),
          );
          results[i] = { status: 'fulfilled', value: entries };
        } catch (reason) {
          results[i] = { status: 'rejected', reason };
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await until('some revocations committed', () => a.announced.length >= 20);
    await server.kill();
    await Promise.all(workers);
    const failed = results.filter((r) => r?.status === 'rejected');
    assert.ok(failed.length > 0, 'the kill interrupted writes');
    for (const r of failed) if (r?.status === 'rejected') assertUnavailable(r.reason);

    await server.restart();
    const log = await a.store.readLog(0, 10_000);
    const logged = new Set(log.map(jtiOf));
    const audited = new Set((await a.store.readAudit({ type: 'revoked', limit: 10_000 })).map((e) => e.jti));
    const deliveries = new Set((await a.store.claimLogoutDeliveries(T0, 10_000, 60_000)).map((d) => d.sid));
    for (let i = 0; i < N; i++) {
      if (results[i] === undefined) continue;
      const ended = (await a.store.getSession(`s${i}`))?.endedAtMs !== undefined;
      const parts = [logged.has(`j${i}`), audited.has(`j${i}`), ended, deliveries.has(`s${i}`)];
      assert.ok(
        parts.every((p) => p === parts[0]),
        `revocation ${i} is all or nothing: ${parts}`,
      );
      if (results[i]!.status === 'fulfilled')
        assert.equal(parts[0], true, `answered revocation ${i} is durable`);
    }
    // What was announced is in the log, at the same positions, and the log stays gapless.
    const byCursor = new Map(log.map((e) => [e.cursor, e]));
    for (const entry of a.announced) assert.deepEqual(byCursor.get(entry.cursor), entry);
    assert.deepEqual(
      log.map((e) => e.cursor),
      log.map((_, i) => i + 1),
    );
    const [after] = await a.store.revoke(revocation([tokenRule('after')]));
    assert.equal(after!.cursor, log.length + 1);
  });
});
