/**
 * A real guard following the revocation log through Redis: a real revokd server (SQLite) whose applied entries a
 * RedisRelay publishes to a real redis-server, and `createGuard({ feed: [redisFeed(…), httpFeed()] })`.
 * Revocations arrive through Redis; Redis restarted empty makes the guard reload a snapshot and lose nothing;
 * Redis down makes it fall back to the server's event stream and come back; with Redis only, it goes stale and
 * recovers.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { type TestContext, test } from 'node:test';
import { GUARD_CHANNEL, type Guard, type GuardEvent, type GuardOptions, httpFeed } from '@revokd/guard';
import { redisFeed } from '@revokd/guard/redis';
import { Redis } from 'ioredis';
import { RedisRelay } from '../src/feed/redis-relay.ts';
import { guardFor, listenOnLoopback } from './support/guard-harness.ts';
import { startTestServer, type TestServer } from './support/harness.ts';
import { within } from './support/poll.ts';
import { type RedisServer, startRedis } from './support/redis.ts';

const PROPAGATION_BOUND_MS = 2000;

function recordEvents(t: TestContext): GuardEvent[] {
  const seen: GuardEvent[] = [];
  const listener = (message: unknown) => seen.push(message as GuardEvent);
  subscribe(GUARD_CHANNEL, listener);
  t.after(() => unsubscribe(GUARD_CHANNEL, listener));
  return seen;
}

function redisClient(t: TestContext, url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  client.on('error', () => {});
  t.after(() => client.disconnect());
  return client;
}

interface Setup {
  readonly server: TestServer;
  readonly base: string;
  readonly redis: RedisServer;
  /** The relay running now. */
  readonly relay: RedisRelay;
  /** Stops the relay (as if every server node's relay stopped), or starts a new one. */
  stopRelay(): Promise<void>;
  startRelay(): void;
  guard(feed: 'redis' | 'redis+http', options?: Partial<GuardOptions>): Promise<Guard>;
  revoke(token: string): Promise<void>;
}

/**
 * A server on loopback, a redis-server, and the relay the runtime will own in cluster mode (wired here by hand:
 * every entry the server applies is published; heartbeats every 100 ms).
 */
async function setUp(t: TestContext): Promise<Setup> {
  const server = await startTestServer();
  t.after(() => server.close());
  const base = await listenOnLoopback(server);
  const redis = await startRedis();
  t.after(() => redis.stop());
  const { runtime } = server;
  const relayClient = redisClient(t, redis.url);
  let relay: RedisRelay | undefined;
  let stopPublishing: (() => void) | undefined;
  const startRelay = () => {
    const started = new RedisRelay({
      client: relayClient,
      readLog: (after, limit) => runtime.store.readLog(after, limit),
      cursor: () => runtime.revocation.index.cursor,
      now: () => runtime.clock.nowMs(),
      heartbeatMs: 100,
      timeoutMs: 300,
    });
    stopPublishing = runtime.revocation.onApplied((entries) => started.publish(entries));
    started.start();
    relay = started;
  };
  const stopRelay = async () => {
    stopPublishing?.();
    await relay?.close();
  };
  startRelay();
  t.after(stopRelay);
  return {
    server,
    base,
    redis,
    get relay() {
      return relay!;
    },
    startRelay,
    stopRelay,
    async guard(feed, options = {}) {
      const redisFeedOfGuard = redisFeed({
        client: redisClient(t, redis.url),
        blockMs: 100,
        responseTimeoutMs: 300,
      });
      const guard = guardFor(server, base, {
        feed: feed === 'redis' ? redisFeedOfGuard : [redisFeedOfGuard, httpFeed()],
        feedRetryIntervalMs: 300,
        idleTimeoutMs: 1000,
        maxStalenessMs: 3000,
        ...options,
      });
      t.after(() => guard.close());
      await guard.ready();
      return guard;
    },
    async revoke(token) {
      const response = await server.form('/revoke', { token }, { authorization: server.client.basic });
      assert.equal(response.statusCode, 200, response.body);
    },
  };
}

const rejected = (guard: Guard, token: string) => {
  const decision = guard.check(`Bearer ${token}`);
  return !decision.ok && decision.reason === 'revoked';
};

test('a revocation reaches the guard through Redis, not through the server stream', async (t) => {
  const seen = recordEvents(t);
  const setup = await setUp(t);
  const guard = await setup.guard('redis+http');
  assert.equal(guard.health().feed, 'redis');
  assert.equal(guard.health().state, 'live');

  const { access_token: token } = await setup.server.login('alice');
  assert.equal(guard.check(`Bearer ${token}`).ok, true);
  await setup.revoke(token);
  const elapsed = await within(PROPAGATION_BOUND_MS, 'revocation via Redis', () => rejected(guard, token));
  t.diagnostic(`revoke response → rejected by the guard via Redis: ${elapsed.toFixed(1)} ms`);
  assert.equal(guard.health().cursor, setup.server.runtime.revocation.index.cursor);
  assert.equal(guard.health().feed, 'redis');
  assert.equal(setup.server.runtime.guards.size, 0, 'no event stream was opened');
  const connected = seen.filter((e) => e.type === 'connected');
  assert.ok(connected.length >= 1 && connected.every((e) => e.type === 'connected' && e.feed === 'redis'));
});

test('Redis restarted empty mid-stream: the guard reloads a snapshot and misses nothing', async (t) => {
  const seen = recordEvents(t);
  const setup = await setUp(t);
  const guard = await setup.guard('redis');
  const tokens = await Promise.all(['bob', 'carol', 'dave'].map((s) => setup.server.login(s)));
  const snapshotsBefore = seen.filter((e) => e.type === 'snapshot').length;

  await setup.redis.kill();
  // Committed while Redis is gone: the relay cannot publish them.
  for (const { access_token } of tokens) await setup.revoke(access_token);
  // (Back within the relay's timeout, Redis would still receive them from the client's queue, gap-free.)
  await within(3000, 'the relay gives up on Redis', () => setup.relay.stats.failing);
  await setup.redis.restart();

  // The relay starts the stream again from the node's last entry; the guard, two entries short of it, resets.
  await within(5000, 'every revocation enforced', () => tokens.every((p) => rejected(guard, p.access_token)));
  await within(PROPAGATION_BOUND_MS, 'live again', () => guard.health().state === 'live');
  assert.ok(seen.some((e) => e.type === 'reset' && e.reason === 'redis_gap'));
  assert.equal(seen.filter((e) => e.type === 'snapshot').length, snapshotsBefore + 1, 'one snapshot reload');
  assert.equal(guard.health().cursor, setup.server.runtime.revocation.index.cursor);

  // And it follows the new stream from there.
  const { access_token: later } = await setup.server.login('erin');
  await setup.revoke(later);
  await within(PROPAGATION_BOUND_MS, 'a later revocation', () => rejected(guard, later));
  assert.equal(guard.health().feed, 'redis');
});

test('Redis down: the guard falls back to the server stream and stays fresh; Redis back: it returns', async (t) => {
  const seen = recordEvents(t);
  const setup = await setUp(t);
  const guard = await setup.guard('redis+http');
  assert.equal(guard.health().feed, 'redis');

  await setup.redis.kill();
  await within(3000, 'fallen back to the server stream', () => {
    const health = guard.health();
    return health.feed === 'http' && health.state === 'live';
  });
  const { access_token: token } = await setup.server.login('frank');
  await setup.revoke(token);
  await within(PROPAGATION_BOUND_MS, 'revocation via the server stream', () => rejected(guard, token));
  // Longer than maxStalenessMs (3 s) on the fallback: still fresh, never stale.
  const states = new Set<string>();
  const watch = setInterval(() => states.add(guard.health().state), 20);
  await new Promise((resolve) => setTimeout(resolve, 3500));
  clearInterval(watch);
  assert.deepEqual([...states], ['live']);
  assert.equal(guard.health().feed, 'http');
  assert.equal(setup.server.runtime.guards.size, 1, 'listed by the server while on its stream');

  await setup.redis.restart();
  await within(
    3000,
    'back on Redis',
    () => guard.health().feed === 'redis' && guard.health().state === 'live',
  );
  await within(
    PROPAGATION_BOUND_MS,
    'the server stream is closed',
    () => setup.server.runtime.guards.size === 0,
  );
  const { access_token: later } = await setup.server.login('grace');
  await setup.revoke(later);
  await within(PROPAGATION_BOUND_MS, 'revocation via Redis again', () => rejected(guard, later));
  assert.equal(guard.health().feed, 'redis');
  const feeds = seen.flatMap((e) => (e.type === 'connected' ? [e.feed] : []));
  assert.deepEqual(feeds.slice(-2), ['http', 'redis']);
});

test('Redis only, Redis down: the guard goes stale per its policy, and recovers', async (t) => {
  const setup = await setUp(t);
  const guard = await setup.guard('redis', { maxStalenessMs: 1000, stalePolicy: 'reject' });
  const { access_token: token } = await setup.server.login('heidi');
  const { access_token: revokedLater } = await setup.server.login('ivan');
  assert.equal(guard.check(token).ok, true);

  await setup.redis.kill();
  await setup.revoke(revokedLater);
  await within(3000, 'stale', () => guard.health().state === 'stale');
  assert.deepEqual(guard.check(token), {
    ok: false,
    status: 503,
    error: 'temporarily_unavailable',
    reason: 'stale',
  });
  const lenient = guard.check(token, { stalePolicy: 'accept' });
  assert.ok(lenient.ok && lenient.stale === true, 'accepted and marked stale under the accept policy');
  assert.equal(guard.health().feed, 'redis', 'no other feed to fall back to');

  await setup.redis.restart();
  await within(5000, 'live again', () => guard.health().state === 'live');
  assert.equal(guard.check(token).ok, true);
  await within(PROPAGATION_BOUND_MS, 'the revocation made while Redis was down', () =>
    rejected(guard, revokedLater),
  );
  assert.equal(guard.health().cursor, setup.server.runtime.revocation.index.cursor);
});

test('relays stopped, Redis up: old heartbeats confirm nothing; the guard falls back, and returns', async (t) => {
  const setup = await setUp(t);
  const guard = await setup.guard('redis+http');
  await setup.stopRelay();
  // The last heartbeat stays in the stream, but it is old: the guard does not take it as fresh.
  await within(3000, 'fallen back to the server stream', () => guard.health().feed === 'http');
  // Probes (every 300 ms) see no new record: the guard stays on the server stream, live.
  const seen = new Set<string>();
  const watch = setInterval(() => seen.add(`${guard.health().feed} ${guard.health().state}`), 10);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  clearInterval(watch);
  assert.deepEqual([...seen], ['http live']);
  const { access_token: token } = await setup.server.login('judy');
  await setup.revoke(token);
  await within(PROPAGATION_BOUND_MS, 'revocation via the server stream', () => rejected(guard, token));

  setup.startRelay();
  await within(
    3000,
    'back on Redis',
    () => guard.health().feed === 'redis' && guard.health().state === 'live',
  );
  const { access_token: later } = await setup.server.login('ken');
  await setup.revoke(later);
  await within(PROPAGATION_BOUND_MS, 'revocation via Redis', () => rejected(guard, later));
});

test('Redis only, relays stopped: reconnecting to the old heartbeat does not keep the guard fresh', async (t) => {
  const setup = await setUp(t);
  const guard = await setup.guard('redis', { maxStalenessMs: 1500 });
  await setup.stopRelay();
  // The guard reopens its read every idleTimeoutMs (1 s) and finds the last heartbeat there each time.
  await within(4000, 'stale', () => guard.health().state === 'stale');
  setup.startRelay();
  await within(3000, 'live again', () => guard.health().state === 'live');
});
