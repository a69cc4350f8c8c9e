/**
 * Guards across the nodes of a cluster: two in-process nodes (real runtimes and apps on loopback) sharing one
 * PostgreSQL database and one Redis, real guards. Receipts are accepted by any node, `/admin/guards` on either
 * node lists every guard (those streaming from a node and those following Redis), `wait_ms` on one node waits for
 * guards connected to the other, a guard that stops reporting drops out after the TTL, and with Redis stopped a
 * node answers from its own view rather than failing the revocation.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, type TestContext, test } from 'node:test';
import { createGuard, type Guard, type GuardOptions } from '@revokd/guard';
import { redisFeed } from '@revokd/guard/redis';
import { Redis } from 'ioredis';
import { parseConfig } from '../src/config/load.ts';
import { ADMIN_AUDIENCE, ADMIN_SCOPE, GRANT_TYPES } from '../src/config/schema.ts';
import { buildApp } from '../src/http/app.ts';
import { createRuntime, type Runtime } from '../src/runtime.ts';
import { migratePostgres } from '../src/store/postgres/migrations.ts';
import { assertOAuthError } from './http/helpers.ts';
import { API, basicAuth, encodeForm, type InjectResult, ISSUER, type TestClient } from './support/harness.ts';
import { type PostgresServer, startPostgres } from './support/postgres.ts';
import { type RedisServer, startRedis, startRedisCluster } from './support/redis.ts';

let postgres: PostgresServer;
before(async () => {
  postgres = await startPostgres();
});
after(async () => {
  await postgres?.destroy();
});

interface Node {
  readonly runtime: Runtime;
  readonly base: string;
  call(
    method: 'GET' | 'POST',
    url: string,
    options?: { headers?: Record<string, string>; body?: string },
  ): Promise<InjectResult>;
}

interface Cluster {
  readonly a: Node;
  readonly b: Node;
  /** The Redis server (undefined on a Redis Cluster). */
  readonly redis: RedisServer | undefined;
  /** A resource server (may read the log), a client for users, and another resource server. */
  readonly rs: TestClient;
  readonly app: TestClient;
  readonly otherRs: TestClient;
  /** An admin Bearer token (valid on both nodes). */
  readonly admin: string;
  login(subject: string): Promise<string>;
  guard(id: string, options: Partial<GuardOptions> & { serverUrl: string }): Promise<Guard>;
  receipt(node: Node, guardId: string, cursor: number, client?: TestClient): Promise<InjectResult>;
  guards(node: Node): Promise<GuardsAnswer>;
  revoke(node: Node, subject: string, waitMs: number): Promise<EnforcementBody>;
}

interface ListedGuard {
  guard_id: string;
  client_id: string;
  cursor: number;
  node: string | null;
  feed: string | null;
  streams: number;
  last_report_at: string | null;
  last_seen_at: string;
}

interface GuardsAnswer {
  cursor: number;
  scope: 'node' | 'cluster';
  guards: ListedGuard[];
}

interface EnforcementBody {
  cursor: number;
  enforced_by: string[];
  pending: string[];
  timed_out: boolean;
  scope: 'node' | 'cluster';
}

let databases = 0;

/**
 * Two nodes on a fresh database and a Redis of their own (a three-master Redis Cluster with `redisCluster`);
 * `guardTtlMs` as given (default 15 s).
 */
async function startCluster(
  t: TestContext,
  options: { guardTtlMs?: number; redisCluster?: boolean } = {},
): Promise<Cluster> {
  const { guardTtlMs } = options;
  const name = `guards_${++databases}`;
  const url = await postgres.createDatabase(name);
  await migratePostgres(url);
  t.after(() => postgres.dropDatabase(name));
  let redis: RedisServer | undefined;
  let redisConfig: { url: string } | { clusterNodes: string[] };
  if (options.redisCluster) {
    const redisCluster = await startRedisCluster();
    t.after(() => redisCluster.stop());
    redisConfig = { clusterNodes: redisCluster.nodes.map((node) => `${node.host}:${node.port}`) };
  } else {
    const server = await startRedis();
    t.after(() => server.stop());
    redis = server;
    redisConfig = { url: server.url };
  }
  const config = parseConfig({
    issuer: ISSUER,
    store: { kind: 'postgres', url },
    feed: { redis: { ...redisConfig, heartbeatMs: 100 } },
    rateLimit: { enabled: false },
    log: { level: 'silent' },
  });
  const startNode = async (): Promise<Node> => {
    const runtime = await createRuntime(config, { follow: true, ...(guardTtlMs ? { guardTtlMs } : {}) });
    const app = buildApp(runtime, { logger: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    t.after(async () => {
      // Guards' keep-alive sockets would hold `close()` until the server's timeouts.
      app.server.closeAllConnections();
      await app.close();
      await runtime.close();
    });
    return {
      runtime,
      base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
      async call(method, path, options = {}) {
        return (await app.inject({
          method,
          url: path,
          headers: options.headers ?? {},
          ...(options.body === undefined ? {} : { payload: options.body }),
        })) as unknown as InjectResult;
      },
    };
  };
  const a = await startNode();
  const b = await startNode();

  const register = async (id: string, settings: Record<string, unknown>): Promise<TestClient> => {
    const { secret } = await a.runtime.clients.register({
      id,
      grants: Object.values(GRANT_TYPES),
      audiences: [API],
      scopes: ['read', 'write'],
      accessTokenTtlSeconds: undefined,
      backchannelLogoutUri: undefined,
      canIntrospect: false,
      sessionClaims: [],
      ...settings,
    });
    return { id, secret, basic: basicAuth(id, secret) };
  };
  const app = await register('app', {});
  const rs = await register('api', { grants: [GRANT_TYPES.clientCredentials], canIntrospect: true });
  const otherRs = await register('other-api', {
    grants: [GRANT_TYPES.clientCredentials],
    canIntrospect: true,
  });
  const ops = await register('ops', {
    grants: [GRANT_TYPES.clientCredentials],
    audiences: [ADMIN_AUDIENCE],
    scopes: [ADMIN_SCOPE],
  });
  const form = (node: Node, fields: Record<string, string>, client: TestClient) =>
    node.call('POST', '/token', {
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: client.basic },
      body: encodeForm(fields),
    });
  const adminAnswer = await form(a, { grant_type: 'client_credentials' }, ops);
  assert.equal(adminAnswer.statusCode, 200, adminAnswer.body);
  const admin = adminAnswer.json<{ access_token: string }>().access_token;
  const bearer = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };

  return {
    a,
    b,
    redis,
    rs,
    app,
    otherRs,
    admin,
    async login(subject) {
      const answer = await form(
        a,
        {
          grant_type: GRANT_TYPES.tokenExchange,
          subject_token: subject,
          subject_token_type: 'urn:revokd:params:oauth:token-type:subject',
        },
        app,
      );
      assert.equal(answer.statusCode, 200, answer.body);
      return answer.json<{ access_token: string }>().access_token;
    },
    async guard(id, options) {
      const guard = createGuard({
        issuer: ISSUER,
        audience: API,
        clientId: rs.id,
        clientSecret: rs.secret,
        jwksUri: `${options.serverUrl}/jwks.json`,
        reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
        readyTimeoutMs: 10_000,
        guardId: id,
        ...options,
      });
      t.after(() => guard.close());
      await guard.ready();
      return guard;
    },
    receipt(node, guardId, cursor, client = rs) {
      return node.call('POST', '/revocations/receipts', {
        headers: { authorization: client.basic, 'content-type': 'application/json' },
        body: JSON.stringify({ guardId, cursor }),
      });
    },
    async guards(node) {
      const answer = await node.call('GET', '/admin/guards', {
        headers: { authorization: `Bearer ${admin}` },
      });
      assert.equal(answer.statusCode, 200, answer.body);
      return answer.json<GuardsAnswer>();
    },
    async revoke(node, subject, waitMs) {
      const answer = await node.call('POST', `/admin/subjects/${subject}/revoke?wait_ms=${waitMs}`, {
        headers: bearer,
        body: JSON.stringify({ reason: 'logout' }),
      });
      assert.equal(answer.statusCode, 200, answer.body);
      return answer.json<{ enforcement: EnforcementBody }>().enforcement;
    },
  };
}

/** A fetch that sends receipts to `node` and everything else where it was going: a balancer's doing. */
function receiptsTo(node: Node): typeof fetch {
  return (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.pathname === '/revocations/receipts') url.host = new URL(node.base).host;
    return fetch(url, init);
  };
}

function redisClient(t: TestContext, url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  client.on('error', () => {});
  t.after(() => client.disconnect());
  return client;
}

async function within<T>(boundMs: number, what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + boundMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) assert.fail(`${what}: not within ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const ids = (answer: GuardsAnswer) => answer.guards.map((guard) => guard.guard_id);
const byId = (answer: GuardsAnswer, id: string) => answer.guards.find((guard) => guard.guard_id === id);

test('a guard streaming from node A reports to node B: accepted, listed by both, and B waits for it', async (t) => {
  const cluster = await startCluster(t);
  const { a, b } = cluster;
  const guard = await cluster.guard('streams-from-a', { serverUrl: a.base, fetch: receiptsTo(b) });
  await within(10_000, 'a receipt accepted by node B', async () => guard.health().reportedCursor);
  assert.equal(a.runtime.guards.streams('streams-from-a'), 1, 'its stream is on node A');
  assert.equal(b.runtime.guards.streams('streams-from-a'), 0);

  for (const node of [a, b]) {
    const listed = await cluster.guards(node);
    assert.equal(listed.scope, 'cluster');
    assert.deepEqual(ids(listed), ['streams-from-a']);
    const entry = byId(listed, 'streams-from-a')!;
    assert.deepEqual(
      [entry.client_id, entry.node, entry.feed, entry.streams],
      ['api', a.runtime.nodeId, 'http', 1],
    );
    assert.notEqual(entry.last_report_at, null);
  }

  const token = await cluster.login('alice');
  assert.equal(guard.check(`Bearer ${token}`).ok, true);
  const started = performance.now();
  const enforcement = await cluster.revoke(b, 'alice', 5000);
  t.diagnostic(
    `wait_ms on B, guard streaming from A, receipts to B: ${(performance.now() - started).toFixed(1)} ms`,
  );
  assert.deepEqual(enforcement, {
    cursor: 1,
    enforced_by: ['streams-from-a'],
    pending: [],
    timed_out: false,
    scope: 'cluster',
  });
  const decision = guard.check(`Bearer ${token}`);
  assert.equal(!decision.ok && decision.reason, 'revoked', 'enforced means applied');

  // Its stream closed: gone from every node at once, not after the TTL.
  await guard.close();
  for (const node of [a, b]) {
    await within(2000, 'dropped', async () =>
      (await cluster.guards(node)).guards.length === 0 ? true : undefined,
    );
  }
});

test('a guard following Redis is listed by both nodes; wait_ms on B waits for a guard of node A', async (t) => {
  const cluster = await startCluster(t);
  const { a, b } = cluster;
  const onRedis = await cluster.guard('on-redis', {
    serverUrl: b.base,
    feed: redisFeed({ client: redisClient(t, cluster.redis!.url), blockMs: 100, responseTimeoutMs: 300 }),
  });
  const onA = await cluster.guard('on-a', { serverUrl: a.base });
  assert.equal(onRedis.health().feed, 'redis');
  await within(10_000, 'receipts accepted', async () =>
    onRedis.health().reportedCursor !== undefined && onA.health().reportedCursor !== undefined
      ? true
      : undefined,
  );
  assert.equal(a.runtime.guards.streams('on-redis') + b.runtime.guards.streams('on-redis'), 0, 'no stream');

  for (const node of [a, b]) {
    const listed = await cluster.guards(node);
    assert.deepEqual(ids(listed), ['on-a', 'on-redis']);
    const redisGuard = byId(listed, 'on-redis')!;
    assert.deepEqual([redisGuard.node, redisGuard.feed, redisGuard.streams], [b.runtime.nodeId, null, 0]);
    const httpGuard = byId(listed, 'on-a')!;
    assert.deepEqual([httpGuard.node, httpGuard.feed, httpGuard.streams], [a.runtime.nodeId, 'http', 1]);
  }
  const metrics = (await b.call('GET', '/metrics')).body;
  assert.match(metrics, /^revokd_guards_connected 2$/m, 'the cluster view');

  const tokens = await Promise.all(['bob', 'carol', 'dave'].map((subject) => cluster.login(subject)));
  const timings: number[] = [];
  for (const [i, subject] of ['bob', 'carol', 'dave'].entries()) {
    const started = performance.now();
    const enforcement = await cluster.revoke(b, subject, 5000);
    timings.push(performance.now() - started);
    assert.deepEqual(
      { ...enforcement, enforced_by: [...enforcement.enforced_by].sort() },
      { cursor: i + 1, enforced_by: ['on-a', 'on-redis'], pending: [], timed_out: false, scope: 'cluster' },
    );
    for (const guard of [onA, onRedis]) {
      const decision = guard.check(`Bearer ${tokens[i]}`);
      assert.equal(!decision.ok && decision.reason, 'revoked');
    }
  }
  t.diagnostic(
    `wait_ms on B for a guard on A and one on Redis: ${timings.map((ms) => ms.toFixed(1)).join(', ')} ms`,
  );

  // Time to enforce is observed once per (rule, guard) across the nodes: 3 rules × 2 guards.
  const observed = async (node: Node) => {
    const text = (await node.call('GET', '/metrics')).body;
    return Number(/^revokd_time_to_enforce_seconds_count\{kind="subject"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  };
  // A receipt may land on a node a moment before that node has read the rule (it is then refused and sent again):
  // the count settles within the receipt cycle.
  await within(6000, 'time to enforce observed 3 × 2 times', async () =>
    (await observed(a)) + (await observed(b)) === 6 ? true : undefined,
  );
  assert.equal((await observed(a)) + (await observed(b)), 6);
});

test('receipts on any node, from any guard allowed to read the log; a guard id stays bound to its client', async (t) => {
  const cluster = await startCluster(t);
  const { a, b, rs, otherRs } = cluster;
  assertOAuthError(await cluster.receipt(b, 'rs-1', 0, cluster.app), 403, 'access_denied');
  assertOAuthError(await cluster.receipt(b, 'rs-1', 5), 400, 'invalid_request');

  // A receipt registers the guard (it may follow Redis): listed on the other node too.
  assert.equal((await cluster.receipt(a, 'rs-1', 0)).statusCode, 204);
  assert.deepEqual(ids(await cluster.guards(b)), ['rs-1']);
  // Another client's guard may not take the id, on either node, by receipt or by stream.
  assertOAuthError(await cluster.receipt(b, 'rs-1', 0, otherRs), 404, 'not_found');
  assertOAuthError(await cluster.receipt(a, 'rs-1', 0, otherRs), 404, 'not_found');
  const stream = await b.call('GET', '/revocations/stream?after=0&guard_id=rs-1', {
    headers: { authorization: otherRs.basic },
  });
  assertOAuthError(stream, 400, 'invalid_request');
  // Its own client may report anywhere, and other ids are free.
  assert.equal((await cluster.receipt(b, 'rs-1', 0, rs)).statusCode, 204);
  assert.equal((await cluster.receipt(b, 'rs-2', 0, otherRs)).statusCode, 204);
  const listed = await cluster.guards(a);
  assert.deepEqual(
    listed.guards.map((guard) => [guard.guard_id, guard.client_id, guard.node]),
    [
      ['rs-1', 'api', b.runtime.nodeId],
      ['rs-2', 'other-api', b.runtime.nodeId],
    ],
  );
  // wait_ms on A waits for both; a receipt on B completes it.
  const waiting = cluster.revoke(a, 'erin', 5000);
  await within(2000, 'the rule reaches B', async () =>
    b.runtime.revocation.index.cursor >= 1 ? true : undefined,
  );
  assert.equal((await cluster.receipt(b, 'rs-1', 1)).statusCode, 204);
  assert.equal((await cluster.receipt(b, 'rs-2', 1, otherRs)).statusCode, 204);
  const reported = performance.now();
  const enforcement = await waiting;
  const nudgedIn = performance.now() - reported;
  t.diagnostic(`receipt on B → wait_ms on A answered: ${nudgedIn.toFixed(1)} ms`);
  assert.ok(nudgedIn < 900, `nudged, not re-read (${nudgedIn.toFixed(1)} ms)`);
  assert.deepEqual(
    { ...enforcement, enforced_by: [...enforcement.enforced_by].sort() },
    { cursor: 1, enforced_by: ['rs-1', 'rs-2'], pending: [], timed_out: false, scope: 'cluster' },
  );
});

test('a guard that stops reporting drops out after the TTL; an open stream keeps its guard connected', async (t) => {
  // Nodes re-register their open streams every TTL / 3: 2 s leaves room for a busy machine's timer delays.
  const ttlMs = 2000;
  const cluster = await startCluster(t, { guardTtlMs: ttlMs });
  const { a, b } = cluster;
  // Reports every 5 s when idle, more than the TTL: only its open stream on A keeps it listed.
  const streaming = await cluster.guard('streaming', { serverUrl: a.base });
  assert.equal((await cluster.receipt(a, 'silent', 0)).statusCode, 204);
  // The stream's registration reaches the shared registry a moment after the guard is live.
  await within(5000, 'both listed by B', async () =>
    ids(await cluster.guards(b)).length === 2 ? true : undefined,
  );
  assert.deepEqual(ids(await cluster.guards(b)), ['silent', 'streaming']);
  assert.deepEqual((await cluster.revoke(b, 'frank', 0)).pending, ['silent', 'streaming']);

  const goneAfter = await within(3 * ttlMs, 'the silent guard dropped', async () =>
    ids(await cluster.guards(b)).includes('silent') ? undefined : true,
  );
  assert.ok(goneAfter);
  await new Promise((resolve) => setTimeout(resolve, 2 * ttlMs));
  for (const node of [a, b]) assert.deepEqual(ids(await cluster.guards(node)), ['streaming']);
  assert.equal(streaming.health().state, 'live');
  // The dropped guard is not waited for.
  const started = performance.now();
  const enforcement = await cluster.revoke(b, 'grace', 5000);
  assert.deepEqual(enforcement.enforced_by, ['streaming']);
  assert.deepEqual(enforcement.pending, []);
  t.diagnostic(`wait_ms after the silent guard dropped: ${(performance.now() - started).toFixed(1)} ms`);
});

test('Redis stopped: wait_ms and /admin/guards answer from the node’s own guards; Redis back: the cluster view', async (t) => {
  const cluster = await startCluster(t, { guardTtlMs: 3000 });
  const { a, b } = cluster;
  const onA = await cluster.guard('on-a', { serverUrl: a.base });
  const onB = await cluster.guard('on-b', { serverUrl: b.base });
  await within(10_000, 'both listed by B', async () =>
    ids(await cluster.guards(b)).length === 2 ? true : undefined,
  );

  await cluster.redis!.kill();
  const token = await cluster.login('heidi');
  const started = performance.now();
  const enforcement = await cluster.revoke(b, 'heidi', 5000);
  const elapsed = performance.now() - started;
  t.diagnostic(`wait_ms on B with Redis down: ${elapsed.toFixed(1)} ms`);
  assert.deepEqual(enforcement, {
    cursor: 1,
    enforced_by: ['on-b'],
    pending: [],
    timed_out: false,
    scope: 'node',
  });
  assert.ok(elapsed < 4000, 'not held until the timeout');
  const decision = onB.check(`Bearer ${token}`);
  assert.equal(!decision.ok && decision.reason, 'revoked');
  // The revocation is durable and reaches the guards of node A too.
  await within(5000, 'enforced by the guard on A', async () => {
    const onADecision = onA.check(`Bearer ${token}`);
    return !onADecision.ok && onADecision.reason === 'revoked' ? true : undefined;
  });
  const local = await cluster.guards(b);
  assert.equal(local.scope, 'node');
  assert.deepEqual(ids(local), ['on-b']);

  await cluster.redis!.restart();
  // The nodes register the streams open on them again (every TTL / 3).
  const back = await within(10_000, 'the cluster view is back', async () => {
    const listed = await cluster.guards(b);
    return listed.scope === 'cluster' && listed.guards.length === 2 ? listed : undefined;
  });
  assert.deepEqual(ids(back), ['on-a', 'on-b']);
  const after = await cluster.revoke(b, 'ivan', 5000);
  assert.deepEqual([...after.enforced_by].sort(), ['on-a', 'on-b']);
  assert.equal(after.scope, 'cluster');
});

test('on a Redis Cluster: one registry for both nodes, in the feed stream’s slot', async (t) => {
  const cluster = await startCluster(t, { redisCluster: true });
  const { a, b } = cluster;
  assert.equal(a.runtime.redisFeed?.guards.key, '{revokd}:log:guards');
  const guard = await cluster.guard('streams-from-a', { serverUrl: a.base, fetch: receiptsTo(b) });
  assert.equal((await cluster.receipt(b, 'receipts-only', 0)).statusCode, 204);
  await within(10_000, 'a receipt accepted by node B', async () => guard.health().reportedCursor);
  for (const node of [a, b]) {
    const listed = await cluster.guards(node);
    assert.equal(listed.scope, 'cluster');
    assert.deepEqual(ids(listed), ['receipts-only', 'streams-from-a']);
  }
  // B waits for the guard streaming from A (its receipts reach B) and for one that reports to A: B hears of that
  // receipt through the Cluster's pub/sub, well before its once-a-second re-read.
  const waiting = cluster.revoke(b, 'judy', 5000);
  await within(2000, 'the guard of A enforces it', async () =>
    guard.health().reportedCursor === 1 ? true : undefined,
  );
  assert.equal((await cluster.receipt(a, 'receipts-only', 1)).statusCode, 204);
  const reported = performance.now();
  const enforcement = await waiting;
  const nudgedIn = performance.now() - reported;
  t.diagnostic(`receipt on A → wait_ms on B answered: ${nudgedIn.toFixed(1)} ms`);
  assert.ok(nudgedIn < 900, `nudged, not re-read (${nudgedIn.toFixed(1)} ms)`);
  assert.deepEqual(
    { ...enforcement, enforced_by: [...enforcement.enforced_by].sort() },
    {
      cursor: 1,
      enforced_by: ['receipts-only', 'streams-from-a'],
      pending: [],
      timed_out: false,
      scope: 'cluster',
    },
  );
});
