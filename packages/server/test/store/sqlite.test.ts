/** The store conformance kit against SqliteStore on a real file, plus what only the embedded store promises. */
import assert from 'node:assert/strict';
import fs, { fstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { TestContext } from 'node:test';
import { describe, mock, test } from 'node:test';
import type { LogEntry, Rule } from '@revokd/guard';
import { isRevokdError } from '../../src/core/errors.ts';
import type { ClientRecord } from '../../src/store/port.ts';
import { Checkpointer } from '../../src/store/sqlite/checkpointer.ts';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.ts';
import { SqliteStore, type SqliteStoreOptions } from '../../src/store/sqlite/sqlite-store.ts';
import { storeConformance } from './conformance.ts';

function tempPath(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'revokd-store-'));
  return { path: join(dir, 'revokd.db'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

storeConformance('SqliteStore', async ({ onLogAppended }) => {
  const { path, remove } = tempPath();
  const options: SqliteStoreOptions = { path, onLogAppended };
  let current = SqliteStore.open(options);
  let open = true;
  const track = (store: SqliteStore): SqliteStore => {
    const close = store.close.bind(store);
    store.close = async () => {
      open = false;
      await close();
    };
    return store;
  };
  return {
    store: track(current),
    reopen: async () => {
      current = track(SqliteStore.open(options));
      open = true;
      return current;
    },
    cleanup: async () => {
      if (open) await current.close();
      remove();
    },
  };
});

// --- SQLite only ---

const T0 = Date.UTC(2026, 0, 1);
const rule = (jti: string): Rule => ({ kind: 'token', jti, expiresAtMs: T0 + 3_600_000 });
const client = (id: string): ClientRecord => ({
  id,
  secretHash: `sha256:${id}`,
  grants: ['client_credentials'],
  audiences: ['https://api.example.com'],
  scopes: ['read'],
  accessTokenTtlSeconds: undefined,
  backchannelLogoutUri: undefined,
  canIntrospect: false,
  sessionClaims: [],
});
const revocation = (jtis: readonly string[], audit = false) => ({
  rules: jtis.map(rule),
  effects: [],
  reason: 'test',
  nowMs: T0,
  audit: audit ? [{ type: 'revoked' as const, atMs: T0, actor: 'cli' }] : [],
});

function openStore(t: TestContext, extra: Partial<SqliteStoreOptions> = {}) {
  const { path, remove } = tempPath();
  const announced: LogEntry[][] = [];
  const store = SqliteStore.open({
    path,
    onLogAppended: (entries) => announced.push([...entries]),
    ...extra,
  });
  let closed = false;
  t.after(async () => {
    if (!closed) await store.close();
    remove();
  });
  return {
    store,
    path,
    announced,
    close: async () => {
      closed = true;
      await store.close();
    },
  };
}

/** A WAL sync held until the test releases it; later syncs complete at once when the test ends. */
function heldSyncs(t: TestContext) {
  const waiting: Array<(error: Error | null) => void> = [];
  let ended = false;
  const sync = {
    started: 0,
    flush: {
      background: (done: (error: Error | null) => void) => {
        sync.started += 1;
        if (ended) done(null);
        else waiting.push(done);
      },
    },
    waiting: () => waiting.length,
    release: (error: Error | null = null) => waiting.shift()!(error),
  };
  t.after(() => {
    ended = true;
    for (const done of waiting.splice(0)) done(null);
  });
  return sync;
}

/** A promise's state, readable without awaiting it. */
function settled<T>(promise: Promise<T>) {
  const state: { state: 'pending' | 'fulfilled' | 'rejected'; value?: T } = { state: 'pending' };
  promise.then(
    (value) => Object.assign(state, { state: 'fulfilled', value }),
    () => Object.assign(state, { state: 'rejected' }),
  );
  return state;
}

/** Lets a few turns of the event loop pass (the group commit runs on setImmediate). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

function assertUnavailable(result: PromiseSettledResult<unknown>): void {
  assert.equal(result.status, 'rejected');
  if (result.status === 'rejected') {
    assert.ok(isRevokdError(result.reason), `a RevokdError, got ${String(result.reason)}`);
    assert.equal(result.reason.code, 'REVOKD_STORE_UNAVAILABLE');
  }
}

describe('SqliteStore', () => {
  test('its connection runs in WAL mode with synchronous=NORMAL (the store syncs the WAL itself) and foreign keys on', (t) => {
    // PRAGMA synchronous is per connection, so read it on the store's own connection: the first DatabaseSync
    // that execs SQL during open() is the store's.
    let own: DatabaseSync | undefined;
    const exec = DatabaseSync.prototype.exec;
    mock.method(DatabaseSync.prototype, 'exec', function (this: DatabaseSync, sql: string) {
      own ??= this;
      return exec.call(this, sql);
    });
    let opened: ReturnType<typeof openStore>;
    try {
      opened = openStore(t, { busyTimeoutMs: 1234 });
    } finally {
      mock.restoreAll();
    }
    assert.ok(own);
    const pragma = (db: DatabaseSync, name: string) => Object.values(db.prepare(`PRAGMA ${name}`).get()!)[0];
    assert.equal(pragma(own, 'journal_mode'), 'wal');
    assert.equal(pragma(own, 'synchronous'), 1); // NORMAL: commits write the WAL, the group commit syncs it
    assert.equal(pragma(own, 'foreign_keys'), 1);
    assert.equal(pragma(own, 'busy_timeout'), 1234);
    // WAL is a property of the file: any other connection sees it too.
    const other = new DatabaseSync(opened.path, { readOnly: true });
    t.after(() => other.close());
    assert.equal(pragma(other, 'journal_mode'), 'wal');
  });

  test('a write is answered, announced and readable in the log only once a sync of the WAL covers it', async (t) => {
    const sync = heldSyncs(t);
    const { store, announced } = openStore(t, { flush: sync.flush });
    const revoked = settled(store.revoke(revocation(['a'], true)));
    await turns(3);
    assert.equal(sync.waiting(), 1, 'the commit is being synced');
    assert.equal(revoked.state, 'pending');
    assert.deepEqual(announced, []);
    // Committed but not durable: a guard must not learn its cursor yet (a power loss could reuse it).
    assert.deepEqual(await store.readLog(0, 10), []);
    assert.deepEqual(await store.snapshot(T0), { cursor: 0, rules: [] });
    sync.release();
    await turns(3);
    assert.equal(revoked.state, 'fulfilled');
    assert.deepEqual(announced, [revoked.value]);
    assert.deepEqual(await store.readLog(0, 10), revoked.value);
    assert.equal((await store.snapshot(T0)).cursor, revoked.value![0]!.cursor);
  });

  test('batches committed while a sync runs share the next one, and are answered in commit order', async (t) => {
    const sync = heldSyncs(t);
    const { store, announced } = openStore(t, { flush: sync.flush });
    const first = settled(store.revoke(revocation(['a'])));
    await turns(3);
    const second = settled(store.revoke(revocation(['b'])));
    await turns(3);
    const third = settled(store.saveClient(client('app')));
    await turns(3);
    assert.equal(sync.waiting(), 1, 'one sync at a time');
    assert.equal(sync.started, 1);
    assert.deepEqual(await store.readLog(0, 10), []);
    sync.release();
    await turns(3);
    assert.equal(first.state, 'fulfilled');
    assert.equal(second.state, 'pending');
    assert.equal(third.state, 'pending');
    assert.deepEqual(
      await store.readLog(0, 10),
      first.value,
      'the log stops below the first entry not durable',
    );
    assert.equal(sync.started, 2, 'the next sync covers both later batches');
    sync.release();
    await turns(3);
    assert.equal(second.state, 'fulfilled');
    assert.equal(third.state, 'fulfilled');
    assert.deepEqual(announced, [first.value, second.value]);
  });

  test('a batch that changed nothing needs no sync of its own, only those of the batches before it', async (t) => {
    const sync = heldSyncs(t);
    const { store } = openStore(t, { flush: sync.flush });
    const nothingDue = settled(store.claimLogoutDeliveries(T0, 10, 1000));
    await turns(3);
    assert.deepEqual(nothingDue, { state: 'fulfilled', value: [] });
    assert.equal(sync.started, 0);
    const revoked = settled(store.revoke(revocation(['a'])));
    await turns(3);
    const claimed = settled(store.claimLogoutDeliveries(T0, 10, 1000));
    await turns(3);
    assert.equal(claimed.state, 'pending', 'it may have read what the write before it committed');
    sync.release();
    await turns(3);
    assert.equal(revoked.state, 'fulfilled');
    assert.equal(claimed.state, 'fulfilled');
    assert.equal(sync.started, 1);
  });

  test('a failed sync fails its writes and every later one with REVOKD_STORE_UNAVAILABLE, and announces nothing', async (t) => {
    const sync = heldSyncs(t);
    const { store, announced } = openStore(t, { flush: sync.flush });
    const write = store.revoke(revocation(['a']));
    await turns(3);
    sync.release(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    const [failed] = await Promise.allSettled([write]);
    assertUnavailable(failed!);
    assertUnavailable((await Promise.allSettled([store.revoke(revocation(['b']))]))[0]!);
    assert.deepEqual(announced, []);
    assert.deepEqual(await store.readLog(0, 10), []);
  });

  test('migrations bring a new database to the latest user_version, and reopening applies none twice', async (t) => {
    const { store, path, close } = openStore(t);
    assert.ok(MIGRATIONS.length >= 1);
    assert.equal(store.schemaVersion, MIGRATIONS.length);
    await store.saveClient(client('app'));
    await close();
    const other = new DatabaseSync(path, { readOnly: true });
    assert.deepEqual({ ...other.prepare('PRAGMA user_version').get() }, { user_version: MIGRATIONS.length });
    other.close();
    const again = SqliteStore.open({ path });
    t.after(() => again.close());
    assert.equal(again.schemaVersion, MIGRATIONS.length);
    assert.equal((await again.getClient('app'))?.id, 'app');
  });

  test('a version-1 database is upgraded in place: its data kept, the logout outbox added', async (t) => {
    const { path, remove } = tempPath();
    t.after(remove);
    const v1 = new DatabaseSync(path);
    v1.exec(`${MIGRATIONS[0]!} PRAGMA user_version = 1;`);
    v1.prepare('INSERT INTO clients (id, secret_hash, settings) VALUES (?, ?, ?)').run(
      'rp',
      'sha256:rp',
      JSON.stringify({ ...client('rp'), backchannelLogoutUri: 'https://rp.example.com/logout' }),
    );
    v1.close();
    const store = SqliteStore.open({ path });
    t.after(() => store.close());
    assert.equal(store.schemaVersion, MIGRATIONS.length);
    assert.equal((await store.getClient('rp'))?.backchannelLogoutUri, 'https://rp.example.com/logout');
    await store.openSession({
      session: {
        sid: 's1',
        subject: 'alice',
        clientId: 'rp',
        scope: '',
        audience: [],
        claims: {},
        createdAtMs: T0,
        lastUsedAtMs: T0,
        absoluteExpiresAtMs: T0 + 86_400_000,
      },
      familyId: 'f1',
      refreshTokenHash: 'h1',
      audit: [],
    });
    await store.revoke({ ...revocation([]), effects: [{ kind: 'end-session', sid: 's1' }] });
    const [delivery] = await store.claimLogoutDeliveries(T0, 10, 1000);
    assert.equal(delivery?.uri, 'https://rp.example.com/logout');
  });

  test('a database with a newer schema version is refused with REVOKD_STORE_UNAVAILABLE', (t) => {
    const { path, remove } = tempPath();
    t.after(remove);
    const db = new DatabaseSync(path);
    db.exec(`CREATE TABLE from_the_future (x); PRAGMA user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    assert.throws(
      () => SqliteStore.open({ path }),
      (error: unknown) => isRevokdError(error) && error.code === 'REVOKD_STORE_UNAVAILABLE',
    );
    const check = new DatabaseSync(path, { readOnly: true });
    assert.deepEqual(
      { ...check.prepare('PRAGMA user_version').get() },
      { user_version: MIGRATIONS.length + 1 },
    );
    check.close();
  });

  test('by default a write is answered only after fdatasync of the WAL file (on the event loop or the thread pool)', async (t) => {
    const { store, path } = openStore(t);
    const synced: Array<{ how: string; ino: number }> = [];
    const record = (how: string, fd: number) => synced.push({ how, ino: fstatSync(fd).ino });
    const syncNow = fs.fdatasyncSync;
    const syncLater = fs.fdatasync;
    mock.method(fs, 'fdatasyncSync', (fd: number) => {
      record('now', fd);
      syncNow(fd);
    });
    mock.method(fs, 'fdatasync', (fd: number, done: (error: Error | null) => void) => {
      record('background', fd);
      syncLater(fd, done);
    });
    syncBuiltinESMExports(); // the store imports them by name
    t.after(() => {
      mock.restoreAll();
      syncBuiltinESMExports();
    });
    const wal = statSync(`${path}-wal`).ino;
    await store.revoke(revocation(['alone']));
    assert.deepEqual(synced, [{ how: 'now', ino: wal }]);
    await Promise.all([store.revoke(revocation(['a'])), store.revoke(revocation(['b']))]);
    assert.deepEqual(synced.at(-1), { how: 'background', ino: wal });
  });

  test('a lone write is synced on the event loop; a batch of several, or one nobody waits on, in the background', async (t) => {
    const calls: string[] = [];
    const waiting: Array<(error: Error | null) => void> = [];
    const { store } = openStore(t, {
      flush: {
        now: () => calls.push('now'),
        background: (done) => {
          calls.push('background');
          waiting.push(done);
        },
      },
    });
    t.after(() => {
      for (const done of waiting.splice(0)) done(null);
    });
    const synced = async (write: Promise<unknown>) => {
      await turns(3);
      waiting.shift()?.(null);
      await write;
      return calls.splice(0);
    };
    assert.deepEqual(await synced(store.revoke(revocation(['alone']))), ['now']);
    // The audit trail's batches, written after the answers they record, wait on nobody.
    const audit = [{ type: 'introspected' as const, atMs: T0, actor: 'api' }];
    assert.deepEqual(await synced(store.appendAudit(audit)), ['background']);
    const pair = Promise.all([store.revoke(revocation(['a'])), store.revoke(revocation(['b']))]);
    await turns(3);
    const behind = settled(store.revoke(revocation(['behind'])));
    await turns(3);
    assert.deepEqual(calls, ['background']);
    assert.equal(behind.state, 'pending', 'it waits for the sync under way');
    waiting.shift()!(null);
    await pair;
    await turns(3);
    assert.equal(behind.state, 'fulfilled');
    assert.deepEqual(calls, ['background', 'now'], 'then, alone, it is synced at once');
  });

  test('checkpoints run on a worker thread: commits never copy the WAL themselves, and the WAL stays bounded', async (t) => {
    const { path, remove } = tempPath();
    t.after(remove);
    const db = new DatabaseSync(path);
    t.after(() => db.isOpen && db.close());
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE filler (x TEXT)');
    const checkpointer = new Checkpointer({ path, db, intervalMs: 10, maxWalFrames: 200 });
    t.after(() => checkpointer.close());
    assert.equal(Object.values(db.prepare('PRAGMA wal_autocheckpoint').get()!)[0], 0);
    const insert = db.prepare('INSERT INTO filler VALUES (?)');
    insert.run('first');
    checkpointer.committed();
    await new Promise((resolve) => setTimeout(resolve, 500)); // the first checkpoint starts the worker thread
    let maxWalBytes = 0;
    for (let i = 0; i < 1500; i++) {
      db.exec('BEGIN');
      insert.run('x'.repeat(4000)); // about a page a commit
      db.exec('COMMIT');
      checkpointer.committed();
      maxWalBytes = Math.max(maxWalBytes, statSync(`${path}-wal`).size);
      if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    // Without checkpoints the WAL would hold all 1500 pages (~6 MB) and the database file none of them.
    assert.ok(maxWalBytes < 3_000_000, `the WAL started over: it reached ${maxWalBytes} bytes`);
    assert.ok(statSync(path).size > 3_000_000, 'the pages were copied into the database file');
  });

  test('client records are cached: changes through the store show at once, changes by another process within 100 ms', async (t) => {
    const { store, path } = openStore(t);
    await store.saveClient(client('app'));
    assert.deepEqual((await store.getClient('app'))?.scopes, ['read']);
    await store.saveClient({ ...client('app'), scopes: ['write'] });
    assert.deepEqual((await store.getClient('app'))?.scopes, ['write'], 'its own write empties the cache');
    // The CLI is another connection (another process) on the same file.
    const cli = SqliteStore.open({ path });
    t.after(() => cli.close());
    await cli.deleteClient('app');
    const deadline = performance.now() + 1000;
    let seenAfterMs: number | undefined;
    const start = performance.now();
    while (performance.now() < deadline) {
      if ((await store.getClient('app')) === undefined) {
        seenAfterMs = performance.now() - start;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(seenAfterMs !== undefined, 'the deletion is seen');
    // 100 ms is the cache's check interval; the rest is slack for a busy machine's timers.
    assert.ok(seenAfterMs <= 400, `seen after ${seenAfterMs} ms`);
  });

  test('group commit: the writes of one tick share one commit, announced once in cursor order', async (t) => {
    const { store, announced } = openStore(t);
    const writes = Array.from({ length: 16 }, (_, i) => store.revoke(revocation([`j${i}`])));
    const results = await Promise.all([...writes, store.saveClient(client('app'))]);
    assert.equal(announced.length, 1, 'one commit for the whole tick');
    assert.equal(announced[0]!.length, 16);
    assert.deepEqual(announced[0], results.slice(0, 16).flat());
    // The next tick is the next commit.
    await Promise.all([store.revoke(revocation(['k1'])), store.revoke(revocation(['k2', 'k3']))]);
    assert.equal(announced.length, 2);
    assert.deepEqual(
      announced[1]!.map((e) => (e.rule.kind === 'token' ? e.rule.jti : '?')),
      ['k1', 'k2', 'k3'],
    );
    assert.ok(announced[1]![0]!.cursor > announced[0]!.at(-1)!.cursor);
  });

  test('when the batch cannot begin (database locked), every write of it fails with REVOKD_STORE_UNAVAILABLE', async (t) => {
    const { store, path, announced } = openStore(t, { busyTimeoutMs: 20 });
    const [before] = await store.revoke(revocation(['before']));
    announced.length = 0;
    const locker = new DatabaseSync(path);
    t.after(() => locker.isOpen && locker.close());
    locker.exec('BEGIN EXCLUSIVE');
    const results = await Promise.allSettled([
      store.revoke(revocation(['a', 'b'])),
      store.saveClient(client('app')),
      store.appendAudit([{ type: 'introspected', atMs: T0, actor: 'api' }]),
      store.getOrCreateSecret('k', () => 'v'),
    ]);
    results.forEach(assertUnavailable);
    assert.deepEqual(announced, []);
    locker.exec('ROLLBACK');
    locker.close();
    assert.equal(await store.getClient('app'), undefined);
    assert.deepEqual(await store.readLog(0, 100), [before]);
    assert.deepEqual(await store.readAudit({ limit: 10 }), []);
    // Once the lock is gone the store carries on.
    const [after] = await store.revoke(revocation(['after']));
    assert.ok(after!.cursor > before!.cursor);
    assert.deepEqual(announced, [[after]]);
  });

  test('when COMMIT fails, every write of the batch fails with REVOKD_STORE_UNAVAILABLE and nothing is published', async (t) => {
    const { store, path, announced } = openStore(t);
    const [before] = await store.revoke(revocation(['before']));
    announced.length = 0;
    // A deferred foreign key is checked only at COMMIT: a trigger that breaks one makes the whole commit fail.
    const saboteur = new DatabaseSync(path);
    t.after(() => saboteur.isOpen && saboteur.close());
    saboteur.exec(`CREATE TABLE poison_parent (id INTEGER PRIMARY KEY);
      CREATE TABLE poison_child (parent INTEGER REFERENCES poison_parent (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TRIGGER poison AFTER INSERT ON audit BEGIN INSERT INTO poison_child (parent) VALUES (-1); END;`);
    const results = await Promise.allSettled([
      store.revoke(revocation(['a'], true)),
      store.saveClient(client('app')),
      store.revoke(revocation(['b'])),
    ]);
    results.forEach(assertUnavailable);
    assert.deepEqual(announced, []);
    assert.equal(await store.getClient('app'), undefined);
    assert.deepEqual(await store.readLog(0, 100), [before]);
    assert.deepEqual(await store.readAudit({ limit: 10 }), []);
    saboteur.exec('DROP TRIGGER poison');
    saboteur.close();
    const [after] = await store.revoke(revocation(['after'], true));
    assert.ok(after!.cursor > before!.cursor);
    assert.deepEqual(announced, [[after]]);
    assert.deepEqual(await store.readLog(0, 100), [before, after]);
  });
});
