/**
 * Feed transports: the guard follows the first that works, falls back to the next when it fails, probes the
 * preferred ones and returns to them; resets reload the snapshot on the same transport. A scripted transport
 * stands in for Redis here (the real one runs against redis-server in packages/server/test).
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { GuardError } from '../src/errors.ts';
import { httpFeed } from '../src/feed/http.ts';
import { redisFeed } from '../src/feed/redis.ts';
import type { FeedConnection, FeedTransport } from '../src/feed/transport.ts';
import { createGuard, type GuardOptions } from '../src/guard.ts';
import { BASE, CLIENT, FakeServer, waitFor } from './support/fake-server.ts';
import { events, startGuard } from './support/guard-setup.ts';
import { AUDIENCE, makeKey, NOW_MS } from './support/keys.ts';

const key = await makeKey('EdDSA', 'k1');
const token = (cursor: number) => ({
  cursor,
  rule: { kind: 'token' as const, jti: `jti-${cursor}`, expiresAtMs: NOW_MS + 1e6 },
});

/** A transport the test drives: it connects (or fails at once), delivers what it is told, and fails on demand. */
class ScriptedTransport implements FeedTransport {
  readonly name: string;
  readonly connections: FeedConnection[] = [];
  /** `follow` fails at once. */
  down = false;
  /** What `probe` answers; undefined: no probe method. */
  probeAnswer: boolean | undefined;
  probes = 0;
  #fail: ((error: Error) => void) | undefined;

  constructor(name: string, options: { probe?: boolean } = {}) {
    this.name = name;
    this.probeAnswer = options.probe;
    if (options.probe === undefined) Object.defineProperty(this, 'probe', { value: undefined });
  }

  follow(connection: FeedConnection): Promise<void> {
    this.connections.push(connection);
    if (this.down) return Promise.reject(new GuardError('REVOKD_GUARD_FEED', `${this.name} is down`));
    connection.connected();
    return new Promise<void>((resolve, reject) => {
      this.#fail = reject;
      connection.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  probe(): Promise<boolean> {
    this.probes += 1;
    return Promise.resolve(this.probeAnswer === true);
  }

  /** The open connection (the last one, while not ended). */
  get open(): FeedConnection | undefined {
    const last = this.connections.at(-1);
    return last && !last.signal.aborted ? last : undefined;
  }

  /** The open connection fails. */
  fail(): void {
    this.#fail?.(new GuardError('REVOKD_GUARD_FEED', `${this.name} lost`));
  }
}

function guardWith(t: Pick<TestContext, 'after'>, options: Partial<GuardOptions>) {
  return startGuard(t, key, { feedRetryIntervalMs: 100, ...options });
}

const beat = (connection: FeedConnection | undefined, cursor: number) => {
  assert.ok(connection, 'a connection is open');
  connection.heartbeat({ cursor, serverTimeMs: NOW_MS });
};

test('follows the first transport; falls back at once when it fails; returns when a probe answers', async (t) => {
  const seen = events(t);
  const primary = new ScriptedTransport('primary', { probe: false });
  const secondary = new ScriptedTransport('secondary');
  const { guard } = guardWith(t, { feed: [primary, secondary] });
  await waitFor(() => primary.open !== undefined);
  beat(primary.open, 0);
  await guard.ready();
  assert.equal(guard.health().feed, 'primary');
  primary.open!.entries([token(1)]);

  primary.fail();
  await waitFor(() => secondary.open !== undefined, { what: 'fallback' });
  assert.equal(secondary.open!.after, 1, 'resumes from the applied cursor');
  assert.equal(guard.health().feed, 'secondary');
  secondary.open!.entries([token(2)]);
  beat(secondary.open, 2);
  assert.equal(guard.health().state, 'live');

  // Probed every feedRetryIntervalMs; while it answers false, the guard stays on the fallback.
  await waitFor(() => primary.probes >= 2, { what: 'probes' });
  assert.equal(primary.connections.length, 1);
  primary.probeAnswer = true;
  await waitFor(() => primary.connections.length === 2, { what: 'back on the primary' });
  assert.equal(primary.open!.after, 2);
  assert.equal(secondary.connections.at(-1)!.signal.aborted, true, 'the fallback connection is closed');
  assert.equal(guard.health().feed, 'primary');
  assert.equal(guard.health().cursor, 2);
  assert.equal(seen.filter((e) => e.type === 'snapshot').length, 1, 'no snapshot reload');
  const probesWhenBack = primary.probes;
  await new Promise((resolve) => setTimeout(resolve, 250));
  assert.equal(primary.probes, probesWhenBack, 'no probing while on the preferred transport');
  assert.deepEqual(
    seen.flatMap((e) => (e.type === 'connected' ? [e.feed] : [])),
    ['primary', 'secondary', 'primary'],
  );
});

test('a transport down from the start is skipped: the guard becomes ready on the next', async (t) => {
  const primary = new ScriptedTransport('primary', { probe: false });
  primary.down = true;
  const secondary = new ScriptedTransport('secondary');
  const { guard } = guardWith(t, { feed: [primary, secondary] });
  await waitFor(() => secondary.open !== undefined);
  beat(secondary.open, 0);
  await guard.ready();
  assert.equal(guard.health().feed, 'secondary');
  assert.equal(guard.health().lastError?.code, 'REVOKD_GUARD_FEED');
});

test('without a probe, the preferred transport is simply tried again', async (t) => {
  const primary = new ScriptedTransport('primary');
  const secondary = new ScriptedTransport('secondary');
  const { guard } = guardWith(t, { feed: [primary, secondary] });
  await waitFor(() => primary.open !== undefined);
  beat(primary.open, 0);
  await guard.ready();
  primary.fail();
  await waitFor(() => secondary.open !== undefined);
  await waitFor(() => primary.connections.length === 2, { what: 'tried again' });
  assert.equal(guard.health().feed, 'primary');
});

test('on the last transport, failures back off and retry it; the preferred one is only probed', async (t) => {
  const primary = new ScriptedTransport('primary', { probe: false });
  primary.down = true;
  const secondary = new ScriptedTransport('secondary');
  secondary.down = true;
  guardWith(t, { feed: [primary, secondary] });
  await waitFor(() => secondary.connections.length >= 3, { what: 'retries of the last transport' });
  assert.equal(primary.connections.length, 1, 'the preferred transport is not retried, only probed');
});

test('a reset reloads the snapshot and stays on the transport that asked', async (t) => {
  const seen = events(t);
  const primary = new ScriptedTransport('primary', { probe: false });
  const secondary = new ScriptedTransport('secondary');
  const { guard, server } = guardWith(t, { feed: [primary, secondary] });
  await waitFor(() => primary.open !== undefined);
  beat(primary.open, 0);
  await guard.ready();
  server.snapshot = { cursor: 7, rules: [] };
  primary.open!.reset('redis_gap', 7);
  await waitFor(() => primary.connections.length === 2, { what: 'reconnected after the reset' });
  assert.equal(primary.open!.after, 7);
  assert.equal(secondary.connections.length, 0);
  assert.equal(seen.filter((e) => e.type === 'snapshot').length, 2);
  assert.ok(seen.some((e) => e.type === 'reset' && e.reason === 'redis_gap'));
});

test('a transport that ends without being asked counts as a failure', async (t) => {
  const lazy: FeedTransport = { name: 'lazy', follow: async () => {} };
  const { guard } = guardWith(t, { feed: lazy });
  await waitFor(() => guard.health().lastError !== undefined);
  assert.equal(guard.health().lastError?.code, 'REVOKD_GUARD_FEED');
  assert.equal(guard.health().feed, 'lazy');
});

test('feed: validated eagerly; the default is the server stream', async (t) => {
  const base = { issuer: BASE, audience: AUDIENCE, clientId: CLIENT.id, clientSecret: CLIENT.secret };
  const server = new FakeServer();
  for (const feed of [[], {}, [httpFeed(), 3], 'http', { name: 'x' }]) {
    assert.throws(() => createGuard({ ...base, fetch: server.fetch, feed: feed as never }), {
      code: 'REVOKD_GUARD_CONFIG',
      message: /feed/,
    });
  }
  assert.throws(() => createGuard({ ...base, fetch: server.fetch, feedRetryIntervalMs: 0 }), {
    code: 'REVOKD_GUARD_CONFIG',
    message: /feedRetryIntervalMs/,
  });
  const guard = createGuard({ ...base, fetch: server.fetch });
  t.after(() => guard.close());
  assert.equal(guard.health().feed, 'http');
  await waitFor(() => server.count('/revocations/stream') > 0, { what: 'the event stream' });
});

test('redisFeed: options validated eagerly', () => {
  const client = { duplicate: () => ({ xread: async () => null, disconnect() {} }) };
  assert.equal(redisFeed({ client }).name, 'redis');
  for (const options of [{}, { client: {} }, { client, streamKey: '' }, { client, blockMs: 0 }]) {
    assert.throws(() => redisFeed(options as never), { code: 'REVOKD_GUARD_CONFIG' });
  }
});

test('receipts refused as unknown (404) are asked again on heartbeats only every 5 s', async (t) => {
  const primary = new ScriptedTransport('primary');
  const { guard, server, clock } = guardWith(t, { feed: primary, guardId: 'api-1' });
  server.receiptStatus = 404;
  await waitFor(() => primary.open !== undefined);
  beat(primary.open, 0);
  await guard.ready();
  await waitFor(() => server.receipts.length === 1);
  for (let i = 0; i < 5; i++) {
    clock.nowMs += 1000;
    beat(primary.open, 0);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(server.receipts.length, 2, 'one more after 5 s, not one per heartbeat');
  // A batch is still reported at once.
  primary.open!.entries([token(1)]);
  await waitFor(() => server.receipts.length === 3);
  assert.equal(guard.health().reportedCursor, undefined);
});
