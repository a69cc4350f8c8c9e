/**
 * The Redis relay against real Redis (a single server and a three-master Cluster) and a real SQLite log: the
 * stream holds the log once, in cursor order, whichever relays publish what and when; heartbeats are shared;
 * Redis going away blocks nothing and is caught up; trimming and holes are visible to consumers, never silent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeEntriesFrame, type FeedConnection, type LogEntry, type Rule } from '@revokd/guard';
import {
  parseRedisFeedRecord,
  REDIS_FEED_STREAM_KEY,
  type RedisFeedRecord,
  redisFeed,
} from '@revokd/guard/redis';
import { Cluster, Redis } from 'ioredis';
import { RedisRelay, type RedisRelayOptions } from '../../src/feed/redis-relay.ts';
import { HEARTBEAT_SCRIPT } from '../../src/feed/redis-scripts.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { within } from '../support/poll.ts';
import { type RedisServer, startRedis, startRedisCluster } from '../support/redis.ts';

const T0 = Date.UTC(2026, 0, 1);
const KEY = REDIS_FEED_STREAM_KEY;

/** A real SQLite log of `count` token rules (cursors 1..count); `expired(i)` rules are already expired. */
async function logOf(
  t: { after(fn: () => Promise<void> | void): void },
  count: number,
  expired: (i: number) => boolean = () => false,
): Promise<{ store: SqliteStore; entries: LogEntry[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'revokd-relay-'));
  const store = SqliteStore.open({ path: join(dir, 'revokd.db') });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const rules: Rule[] = [];
  for (let i = 1; i <= count; i++) {
    rules.push({ kind: 'token', jti: `jti-${i}`, expiresAtMs: expired(i) ? T0 - 1 : T0 + 3_600_000 });
  }
  await store.revoke({ rules, effects: [], reason: 'test', nowMs: T0, audit: [] });
  return { store, entries: await store.readLog(0, count) };
}

function client(t: { after(fn: () => void): void }, url: string): Redis {
  // Short retries: tests stop Redis on purpose.
  const redis = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  redis.on('error', () => {});
  t.after(() => redis.disconnect());
  return redis;
}

function relayFor(
  t: { after(fn: () => Promise<void>): void },
  redis: Redis | Cluster,
  store: SqliteStore,
  options: Partial<RedisRelayOptions> & { cursor?: () => number } = {},
): RedisRelay {
  const relay = new RedisRelay({
    client: redis,
    readLog: (after, limit) => store.readLog(after, limit),
    cursor: () => 0,
    now: () => T0,
    heartbeatMs: 100,
    timeoutMs: 500,
    ...options,
  });
  t.after(() => relay.close());
  return relay;
}

interface StoredRecord {
  readonly id: string;
  readonly data: string;
  readonly record: RedisFeedRecord;
}

async function readStream(redis: Redis | Cluster, key = KEY): Promise<StoredRecord[]> {
  const items = (await redis.xrange(key, '-', '+')) as Array<[string, string[]]>;
  return items.map(([id, fields]) => {
    const record = parseRedisFeedRecord(id, fields);
    assert.ok(record, `record ${id} is valid`);
    return { id, data: fields[fields.indexOf('data') + 1]!, record };
  });
}

/**
 * Asserts the stream holds exactly `expected` (in order, once each) in entries records that chain: each one's
 * `prev` is the previous record's last cursor (the first one's: `firstPrev`); ids are `<last>-0`; data is the
 * SSE entries frame's JSON, byte for byte.
 */
function assertStreamHolds(
  records: readonly StoredRecord[],
  expected: readonly LogEntry[],
  firstPrev = 0,
): void {
  const entries: LogEntry[] = [];
  let previous = firstPrev;
  for (const { id, data, record } of records) {
    if (record.kind !== 'entries') continue;
    const last = record.entries.at(-1)!.cursor;
    assert.equal(id, `${last}-0`);
    assert.equal(record.prev, previous, `record ${id} continues the one before`);
    assert.ok(encodeEntriesFrame(record.entries).includes(`data: ${data}\n`), 'the SSE frame JSON');
    entries.push(...record.entries);
    previous = last;
  }
  assert.equal(entries.length, expected.length, 'every entry once');
  assert.deepEqual(entries, expected);
}

/** Deterministic chunk sizes in [1, max]. */
function chunked(entries: readonly LogEntry[], seed: number, max: number): LogEntry[][] {
  let state = seed;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const chunks: LogEntry[][] = [];
  for (let i = 0; i < entries.length; ) {
    const size = 1 + Math.floor(random() * max);
    chunks.push(entries.slice(i, i + size));
    i += size;
  }
  return chunks;
}

/** Feeds the chunks to the relay, yielding to the event loop now and then so that relays interleave. */
async function feed(relay: RedisRelay, chunks: readonly LogEntry[][], every: number): Promise<void> {
  for (let i = 0; i < chunks.length; i++) {
    relay.publish(chunks[i]!);
    if (i % every === 0) await sleep(1);
  }
  await relay.flush();
}

/** Follows the stream with the guard's own transport from `after`, until `until` holds; returns what it got. */
async function consume(
  redis: Redis | Cluster,
  after: number,
  until: (got: Consumed) => boolean,
  timeoutMs = 5000,
): Promise<Consumed> {
  const got: Consumed = { entries: [], heartbeats: [], resets: [] };
  const controller = new AbortController();
  const connection: FeedConnection = {
    serverUrl: 'http://unused.test',
    authorization: '',
    fetch,
    guardId: undefined,
    heartbeatMs: 100,
    idleTimeoutMs: 10_000,
    maxEventChars: 16 * 1024 * 1024,
    after,
    signal: controller.signal,
    connected() {},
    entries: (list) => got.entries.push(...list),
    heartbeat: (frame) => got.heartbeats.push(frame.cursor),
    reset: (reason, cursor) => {
      got.resets.push({ reason, cursor });
      controller.abort();
    },
  };
  const following = redisFeed({ client: redis, blockMs: 50 }).follow(connection);
  const deadline = Date.now() + timeoutMs;
  while (!until(got) && !controller.signal.aborted) {
    if (Date.now() > deadline) {
      controller.abort();
      await following.catch(() => {});
      assert.fail(`consumer: condition not met within ${timeoutMs} ms: ${JSON.stringify(got).slice(0, 300)}`);
    }
    await sleep(5);
  }
  controller.abort();
  await following;
  return got;
}

interface Consumed {
  entries: LogEntry[];
  heartbeats: number[];
  resets: Array<{ reason: string; cursor: number }>;
}

/** Two relays fed the same 2,000 entries in different chunkings, concurrently, and one that must fill. */
async function orderingScenario(t: TestContext, connect: () => Redis | Cluster): Promise<SqliteStore> {
  const { store, entries } = await logOf(t, 2000);
  const [a, b, c] = [connect(), connect(), connect()].map((redis) => relayFor(t, redis, store));
  const tail = entries.slice(1900);
  const chunksOfA = chunked(entries, 1, 40);
  // The stream is not empty when C publishes (an empty stream would take C's batch as its start).
  a!.publish(chunksOfA.shift()!);
  await a!.flush();
  await Promise.all([
    feed(a!, chunksOfA, 3),
    // B lags behind A, in bigger chunks.
    sleep(5).then(() => feed(b!, chunked(entries, 7, 150), 1)),
    // C has only applied the tail (it started late): it must publish the log before it from the store.
    sleep(15).then(() => feed(c!, [tail], 1)),
  ]);
  const records = await readStream(connect());
  assertStreamHolds(records, entries);
  const added = [a!, b!, c!].map((relay) => relay.stats.entriesAdded);
  assert.equal(
    added.reduce((sum, n) => sum + n, 0),
    2000,
    `each entry added by exactly one relay (${added})`,
  );
  t.diagnostic(`entries added by relays A, B, C: ${added.join(', ')} (records: ${records.length})`);
  return store;
}

describe('RedisRelay on a single Redis', () => {
  let redisServer: RedisServer;
  test.before(async () => {
    redisServer = await startRedis();
  });
  test.after(() => redisServer.stop());
  test.beforeEach(async () => {
    const redis = new Redis(redisServer.url);
    await redis.flushall();
    redis.disconnect();
  });

  test('relays publishing overlapping batches concurrently leave the log in the stream once, in order', async (t) => {
    await orderingScenario(t, () => client(t, redisServer.url));
  });

  test('entries pruned from the log leave holes the records bridge; the guard transport reads on', async (t) => {
    // Every third rule has expired and is pruned: the log has holes.
    const { store } = await logOf(t, 300, (i) => i % 3 === 0);
    await store.prune(T0);
    const log = await store.readLog(0, 1000);
    assert.equal(log.length, 200);
    const redis = client(t, redisServer.url);
    let reads = 0;
    const relay = relayFor(t, redis, store, {
      readLog: (after, limit) => {
        reads += 1;
        return store.readLog(after, limit);
      },
    });
    // The first entry, then only the last: the relay fills everything between from the log, over the holes.
    relay.publish(log.slice(0, 1));
    await relay.flush();
    relay.publish(log.slice(-1));
    await relay.flush();
    assertStreamHolds(await readStream(redis), log);
    assert.ok(reads <= 3, `filled in a few reads (${reads})`);
    const got = await consume(redis, 0, (g) => g.entries.length === 200);
    assert.deepEqual(got.entries, log);
    assert.deepEqual(got.resets, []);
  });

  test('heartbeats: shared by the nodes, at the head, only the latest kept; a node ahead publishes first', async (t) => {
    const { store, entries } = await logOf(t, 50);
    const relays = [0, 1, 2, 3].map((n) =>
      relayFor(t, client(t, redisServer.url), store, { cursor: () => 50, now: () => T0 + n }),
    );
    // Nothing was published: the first node to tick finds itself ahead of the (empty) stream and fills it.
    for (const relay of relays) relay.start();
    const redis = client(t, redisServer.url);
    await within(2000, 'a heartbeat at the head', async () =>
      (await readStream(redis)).some((r) => r.record.kind === 'heartbeat'),
    );
    const before = relays.reduce((sum, r) => sum + r.stats.heartbeats, 0);
    await sleep(1000);
    const written = relays.reduce((sum, r) => sum + r.stats.heartbeats, 0) - before;
    // Four nodes ticking every 100 ms would write 40; one per heartbeatMs / 2 at most is 20.
    assert.ok(written >= 5 && written <= 22, `heartbeats in 1 s: ${written}`);
    const records = await readStream(redis);
    // Redis restarted empty semantics: the stream starts from the node's last entry, then the heartbeat.
    assertStreamHolds(records, entries.slice(49), 49);
    const heartbeats = records.filter((r) => r.record.kind === 'heartbeat');
    assert.equal(heartbeats.length, 1, 'only the latest heartbeat is kept');
    const last = records.at(-1)!;
    assert.match(last.id, /^50-[1-9][0-9]*$/);
    assert.ok(last.record.kind === 'heartbeat');
    assert.equal(last.record.heartbeat.cursor, 50);
    assert.ok([0, 1, 2, 3].map((n) => T0 + n).includes(last.record.heartbeat.serverTimeMs));

    // A consumer at the head is confirmed fresh by them.
    const got = await consume(redis, 50, (g) => g.heartbeats.length >= 2);
    assert.deepEqual(got.entries, []);
    assert.ok(got.heartbeats.every((cursor) => cursor === 50));
  });

  test('a node whose entries were never published publishes them before its heartbeat', async (t) => {
    const { store, entries } = await logOf(t, 120);
    const redis = client(t, redisServer.url);
    const first = relayFor(t, redis, store);
    first.publish(entries.slice(0, 100));
    await first.flush();
    // Another node committed 101..120 and died before publishing them; this node has applied them.
    const survivor = relayFor(t, client(t, redisServer.url), store, { cursor: () => 120 });
    survivor.start();
    await within(2000, 'heartbeat at 120', async () => {
      const last = (await readStream(redis)).at(-1)?.record;
      return last?.kind === 'heartbeat' && last.heartbeat.cursor === 120;
    });
    assertStreamHolds(await readStream(redis), entries);
  });

  test('a stream ahead of the whole log (a restored database) is reported as foreign; a lagging node is not', async (t) => {
    const { store, entries } = await logOf(t, 50);
    const redis = client(t, redisServer.url);
    const publisher = relayFor(t, redis, store, { cursor: () => 50 });
    publisher.publish(entries);
    await publisher.flush();
    // A node that has applied only 20 of the 50: behind the stream, but its log has the rest.
    const lagging = relayFor(t, client(t, redisServer.url), store, { cursor: () => 20 });
    lagging.start();
    await within(2000, 'the lagging node ticked', () => lagging.stats.head === 50);
    await sleep(250);
    assert.equal(lagging.stats.foreignStream, false);
    // The database restored from a backup of 10 entries: the stream holds 40 the log never will.
    const { store: restored } = await logOf(t, 10);
    const warnings: string[] = [];
    const restoredNode = relayFor(t, client(t, redisServer.url), restored, {
      cursor: () => 10,
      logger: { info: () => {}, warn: (_context, message) => warnings.push(message) },
    });
    restoredNode.start();
    await within(2000, 'reported as foreign', () => restoredNode.stats.foreignStream);
    assert.equal(warnings.filter((message) => message.includes('ahead of this deployment’s log')).length, 1);
  });

  test('a node further ahead of the stream than it keeps publishes only its last entry, then beats', async (t) => {
    const { store, entries } = await logOf(t, 500);
    const redis = client(t, redisServer.url);
    const first = relayFor(t, redis, store);
    first.publish(entries.slice(0, 10));
    await first.flush();
    let reads = 0;
    const ahead = relayFor(t, client(t, redisServer.url), store, {
      maxLength: 50,
      cursor: () => 500,
      readLog: (after, limit) => {
        reads += 1;
        return store.readLog(after, limit);
      },
    });
    ahead.start();
    await within(2000, 'heartbeat at 500', async () => {
      const last = (await readStream(redis)).at(-1)?.record;
      return last?.kind === 'heartbeat' && last.heartbeat.cursor === 500;
    });
    assert.equal(reads, 1);
    const records = (await readStream(redis)).filter((r) => r.record.kind === 'entries');
    assert.equal(records.length, 2);
    assertStreamHolds(records.slice(1), entries.slice(499), 499);
  });

  test('Redis stopped: publish neither throws nor blocks; after a restart (empty) the relay resumes', async (t) => {
    const own = await startRedis();
    t.after(() => own.stop());
    const { store, entries } = await logOf(t, 20);
    const logs: string[] = [];
    const logger = {
      info: (_: object, message: string) => logs.push(`info ${message}`),
      warn: (_: object, message: string) => logs.push(`warn ${message}`),
    };
    let applied = 10;
    const redis = client(t, own.url);
    const relay = relayFor(t, redis, store, { cursor: () => applied, logger, timeoutMs: 300 });
    relay.publish(entries.slice(0, 10));
    relay.start();
    await relay.flush();
    assert.equal(relay.stats.head, 10);

    await own.stop();
    const started = performance.now();
    for (let i = 10; i < 20; i++) {
      relay.publish([entries[i]!]);
      applied = i + 1;
    }
    assert.ok(performance.now() - started < 20, 'publish returns at once');
    await within(3000, 'the failure is noticed', () => relay.stats.failing);
    assert.equal(logs.filter((l) => l.startsWith('warn')).length, 1, 'logged once');
    assert.ok(relay.stats.errors >= 1);

    await own.restart();
    await within(5000, 'publishing again', () => !relay.stats.failing && relay.stats.heartbeats > 0);
    assert.ok(logs.includes('info redis relay: publishing again'));
    // Redis came back empty: the stream starts again from the node's last entry (consumers behind it reset).
    const fresh = client(t, own.url);
    assertStreamHolds(await readStream(fresh), entries.slice(19, 20), 19);
    const behind = await consume(fresh, 10, (g) => g.resets.length > 0);
    assert.deepEqual(behind.resets, [{ reason: 'redis_gap', cursor: 19 }]);
    // New batches continue the stream.
    const more = await store.revoke({
      rules: [21, 22, 23].map((i) => ({ kind: 'token', jti: `jti-${i}`, expiresAtMs: T0 + 3_600_000 })),
      effects: [],
      reason: 'test',
      nowMs: T0,
      audit: [],
    });
    relay.publish(more);
    applied = 23;
    await relay.flush();
    assertStreamHolds(await readStream(fresh), [entries[19]!, ...more], 19);
    const caughtUp = await consume(fresh, 20, (g) => g.entries.length === 3);
    assert.deepEqual(caughtUp.entries, more);
  });

  test('a heartbeat that reaches Redis after its deadline (it sat in a client queue) writes nothing', async (t) => {
    const redis = client(t, redisServer.url);
    await redis.xadd(KEY, '5-0', 'event', 'entries', 'data', JSON.stringify({ entries: [] }), 'prev', '4');
    const [seconds] = await redis.time();
    const run = (deadline: number) =>
      redis.eval(
        HEARTBEAT_SCRIPT,
        2,
        KEY,
        `${KEY}:heartbeat`,
        '5',
        '1',
        '100',
        '1000',
        String(deadline),
        '0',
      );
    assert.deepEqual(((await run(Number(seconds) * 1000 - 1000)) as unknown[]).slice(0, 2), ['expired', '5']);
    assert.equal(await redis.xlen(KEY), 1);
    assert.deepEqual(((await run(Number(seconds) * 1000 + 60_000)) as unknown[]).slice(0, 2), ['beat', '5']);
    assert.equal(await redis.xlen(KEY), 2);
  });

  test('trimming keeps the stream bounded; a consumer trimmed past reloads; a huge gap is not filled', async (t) => {
    const { store, entries } = await logOf(t, 1000);
    const redis = client(t, redisServer.url);
    let reads = 0;
    const relay = relayFor(t, redis, store, {
      maxLength: 50,
      readLog: (after, limit) => {
        reads += 1;
        return store.readLog(after, limit);
      },
    });
    for (let i = 0; i < 900; i += 2) {
      relay.publish(entries.slice(i, i + 2));
      // One record per batch (queued batches would be merged into fewer records).
      await relay.flush();
    }
    const length = await redis.xlen(KEY);
    // `MAXLEN ~` trims whole nodes of 100 records: between 50 and 150 are kept.
    assert.ok(length >= 50 && length <= 150, `XLEN ${length}`);
    const records = await readStream(redis);
    const firstKept = records[0]!.record;
    assert.ok(firstKept.kind === 'entries');
    assertStreamHolds(records, entries.slice(firstKept.prev, 900), firstKept.prev);
    const trimmed = await consume(redis, 10, (g) => g.resets.length > 0);
    assert.deepEqual(trimmed.entries, []);
    assert.deepEqual(trimmed.resets, [{ reason: 'redis_gap', cursor: firstKept.prev }]);

    // 900 → 1000 is wider than maxLength: published as a jump, not filled from the log.
    relay.publish(entries.slice(999));
    await relay.flush();
    assert.equal(reads, 0);
    const jump = (await readStream(redis)).at(-1)!.record;
    assert.ok(jump.kind === 'entries');
    assert.equal(jump.prev, 999);
    const atJump = await consume(redis, 900, (g) => g.resets.length > 0);
    assert.deepEqual(atJump.resets, [{ reason: 'redis_gap', cursor: 999 }]);
  });
});

describe('RedisRelay on a Redis Cluster (3 masters)', () => {
  test('relays publishing overlapping batches concurrently leave the log in the stream once, in order', async (t) => {
    const cluster = await startRedisCluster(3);
    t.after(() => cluster.stop());
    const clients: Cluster[] = [];
    t.after(() => {
      for (const c of clients) c.disconnect();
    });
    const connect = () => {
      const c = new Cluster([...cluster.nodes]);
      c.on('error', () => {});
      clients.push(c);
      return c;
    };
    const store = await orderingScenario(t, connect);
    // The stream and its heartbeat key share a slot (the hash tag): a heartbeat script can touch both.
    const relay = relayFor(t, connect(), store, { cursor: () => 2000 });
    relay.start();
    await within(3000, 'a heartbeat', () => relay.stats.heartbeats > 0);
    const got = await consume(connect(), 2000, (g) => g.heartbeats.length > 0);
    assert.deepEqual(got.heartbeats.slice(0, 1), [2000]);
  });
});
