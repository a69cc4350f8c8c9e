/**
 * Cluster mode with real processes (DESIGN, Propagation and Guarantees): PostgreSQL and Redis started by the test
 * harness on free loopback ports, two `revokd serve` nodes sharing them behind a round-robin TCP balancer, and four
 * guard processes: two follow a node's HTTP stream (through the balancer), two follow the Redis stream (falling
 * back to HTTP).
 *
 * - 10,000 revocations spread over both nodes concurrently: every guard ends with all of them, its cursor and rule
 *   count equal to the store's snapshot; sampled tokens of revoked subjects are rejected everywhere;
 * - a token issued by one node is refreshed, introspected and revoked on the other;
 * - kill -9 a node during a burst: every acknowledged revocation is in PostgreSQL and reaches every guard;
 * - Redis restarted empty (no persistence) during a burst: every guard catches up, nothing missing;
 * - PostgreSQL stopped: writes answer 503 with Retry-After and nothing is written, guards keep enforcing; restarted:
 *   writes succeed again on the same nodes;
 * - a three-master Redis Cluster carries the fan-out.
 */
import assert from 'node:assert/strict';
import { after, before, describe, type TestContext, test } from 'node:test';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { type PostgresServer, startPostgres } from '../test/support/postgres.ts';
import { addClientViaCli, cli, freePort, type ServerProcess, startServer } from '../test/support/process.ts';
import { type RedisServer, startRedis, startRedisCluster } from '../test/support/redis.ts';
import { TcpBalancer } from '../test/support/tcp-balancer.ts';
import { type Credentials, clientCredentials, login, postForm, type TokenResponse } from './helpers.ts';
import { type GuardHealth, type GuardProcess, startGuard, within } from './support/guards.ts';

const REVOCATIONS = 10_000;
const CONCURRENCY = 16;
/** Generous: the machine is shared; the benchmarks measure propagation, this proves completeness. */
const CONVERGENCE_MS = 60_000;

interface Cluster {
  readonly databaseUrl: string;
  readonly nodes: ServerProcess[];
  readonly balancer: TcpBalancer;
  readonly guards: GuardProcess[];
  readonly app: Credentials;
  readonly adminToken: () => Promise<string>;
  readonly store: PostgresStore;
}

describe('cluster mode: two nodes, PostgreSQL, Redis, four guards', () => {
  let postgres: PostgresServer;
  let redis: RedisServer;

  before(async () => {
    postgres = await startPostgres();
    redis = await startRedis({ persistence: false });
  });
  /**
   * A Redis database of its own for each cluster: one feed stream per deployment (two revokd logs must never share
   * one stream; docs/architecture.md, Redis fan-out).
   */
  let databases = 0;
  const redisUrl = () => `${redis.url}/${++databases}`;

  after(async () => {
    await redis?.stop();
    await postgres?.destroy();
  });

  const redisEnv = (url: string) => [{ REVOKD_REDIS_URL: url }, { GUARD_REDIS_URL: url }] as const;

  async function startCluster(
    t: TestContext,
    redisEnv: Record<string, string>,
    guardRedisEnv: Record<string, string>,
  ): Promise<Cluster> {
    const databaseUrl = await postgres.createDatabase();
    assert.match(await cli(databaseUrl, ['migrate']), /schema/);
    const app = await addClientViaCli(databaseUrl, 'app');
    const rs = await addClientViaCli(databaseUrl, 'rs', [
      '--grant',
      'client_credentials',
      '--audience',
      'https://api.example.com',
      '--introspect',
    ]);
    const ops = await addClientViaCli(databaseUrl, 'ops', [
      '--grant',
      'client_credentials',
      '--audience',
      'urn:revokd:admin',
      '--scope',
      'revokd:admin',
    ]);
    const ports = [await freePort(), await freePort()];
    const balancer = new TcpBalancer(ports);
    await balancer.start();
    t.after(() => balancer.close());
    // Every node has the same issuer: the balancer's address, which clients and guards use.
    const env = { REVOKD_ISSUER: balancer.url, ...redisEnv };
    const nodes = await Promise.all(ports.map((port) => startServer({ dbPath: databaseUrl, port, env })));
    for (const node of nodes) t.after(() => node.kill9());
    const guardEnv = (id: string, extra: Record<string, string> = {}) => ({
      GUARD_ISSUER: balancer.url,
      GUARD_SERVER_URL: balancer.url,
      GUARD_CLIENT_ID: rs.client_id,
      GUARD_CLIENT_SECRET: rs.client_secret,
      GUARD_ID: id,
      GUARD_MAX_STALENESS_MS: '10000',
      ...extra,
    });
    const guards = await Promise.all([
      startGuard(guardEnv('http-1')),
      startGuard(guardEnv('http-2')),
      startGuard(guardEnv('redis-1', guardRedisEnv)),
      startGuard(guardEnv('redis-2', guardRedisEnv)),
    ]);
    for (const guard of guards) t.after(() => guard.stop());
    const store = await PostgresStore.open({ url: databaseUrl, poolSize: 2 });
    t.after(() => store.close());
    return {
      databaseUrl,
      nodes,
      balancer,
      guards,
      app,
      store,
      adminToken: async () => (await clientCredentials(balancer.url, ops)).access_token,
    };
  }

  /**
   * Revokes `subjects` (one subject rule each), alternating between the nodes, `CONCURRENCY` at a time. Returns the
   * subjects whose revocation was acknowledged (200); a request that fails (a killed node) is not acknowledged.
   */
  async function revokeSubjects(
    cluster: Cluster,
    subjects: readonly string[],
    onProgress?: (acknowledged: number) => void,
  ): Promise<{ acknowledged: string[]; failed: number }> {
    const token = await cluster.adminToken();
    const acknowledged: string[] = [];
    let failed = 0;
    let next = 0;
    const worker = async () => {
      while (next < subjects.length) {
        const i = next++;
        const subject = subjects[i]!;
        const node = cluster.nodes[i % cluster.nodes.length]!;
        try {
          const response = await fetch(`${node.url}/admin/subjects/${subject}/revoke`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ reason: 'password_changed' }),
          });
          await response.arrayBuffer();
          if (response.status === 200) {
            acknowledged.push(subject);
            onProgress?.(acknowledged.length);
          } else failed += 1;
        } catch {
          failed += 1;
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    return { acknowledged, failed };
  }

  /** Every guard's cursor and rule count equal the store's snapshot; on failure, says where each guard is. */
  async function assertGuardsEqualStore(cluster: Cluster, what: string): Promise<number> {
    const snapshot = await cluster.store.snapshot(Date.now());
    let last: GuardHealth[] = [];
    try {
      return await within(
        CONVERGENCE_MS,
        `${what}: every guard at cursor ${snapshot.cursor} with ${snapshot.rules.length} rules`,
        async () => {
          last = await Promise.all(cluster.guards.map((guard) => guard.health()));
          return last.every((h) => h.cursor === snapshot.cursor && h.activeRules === snapshot.rules.length);
        },
        50,
      );
    } catch (error) {
      const where = last.map(({ guardId, state, feed, cursor, activeRules, reconnects, lastError }) =>
        JSON.stringify({ guardId, state, feed, cursor, activeRules, reconnects, lastError }),
      );
      throw new Error(`${(error as Error).message}\n${where.join('\n')}`);
    }
  }

  function subjectsOf(rules: readonly { kind: string; sub?: string }[]): Set<string> {
    return new Set(rules.flatMap((rule) => (rule.kind === 'subject' && rule.sub ? [rule.sub] : [])));
  }

  test('10,000 revocations spread over both nodes concurrently reach every guard; state equals the store', async (t) => {
    const cluster = await startCluster(t, ...redisEnv(redisUrl()));
    const subjects = Array.from({ length: REVOCATIONS }, (_, i) => `user-${i}`);
    // Tokens issued before the burst, through either node: sampled subjects (revoked) and one control (not).
    const sampled = [0, 1, 2, 4_999, 5_000, 7_777, 9_998, 9_999].map((i) => subjects[i]!);
    const before: TokenResponse[] = [];
    for (const subject of sampled) before.push(await login(cluster.balancer.url, cluster.app, subject));
    const control = await login(cluster.balancer.url, cluster.app, 'not-revoked');

    const started = performance.now();
    const { acknowledged, failed } = await revokeSubjects(cluster, subjects);
    const burstMs = performance.now() - started;
    assert.equal(failed, 0);
    assert.equal(acknowledged.length, REVOCATIONS);
    const convergedMs = await assertGuardsEqualStore(cluster, 'after the burst');
    const snapshot = await cluster.store.snapshot(Date.now());
    assert.deepEqual(subjectsOf(snapshot.rules), new Set(subjects), 'the store holds every revocation once');
    assert.equal(snapshot.rules.length, REVOCATIONS);
    for (const guard of cluster.guards) {
      for (const token of before) {
        assert.deepEqual((await guard.check(token.access_token)).body, {
          ok: false,
          reason: 'revoked',
          revokedBy: 'subject',
        });
      }
      assert.equal((await guard.check(control.access_token)).status, 200, `${guard.id} accepts the control`);
    }
    const feeds = await Promise.all(cluster.guards.map(async (guard) => (await guard.health()).feed));
    assert.deepEqual(feeds, ['http', 'http', 'redis', 'redis'], 'each guard on the feed it prefers');
    let added = 0;
    for (const node of cluster.nodes) {
      const metrics = await (await fetch(`${node.url}/metrics`)).text();
      assert.match(metrics, /^revokd_redis_relay_failing 0$/m);
      added += Number(/^revokd_redis_relay_entries_added (\d+)$/m.exec(metrics)?.[1]);
    }
    assert.equal(added, REVOCATIONS, 'the two relays added each entry to the stream once between them');
    t.diagnostic(
      `${REVOCATIONS} revocations over 2 nodes in ${burstMs.toFixed(0)} ms ` +
        `(${Math.round((REVOCATIONS / burstMs) * 1000)}/s); every guard equal to the store ${convergedMs.toFixed(0)} ms later`,
    );
  });

  test('a session opened on one node is refreshed, introspected and revoked on the other', async (t) => {
    const cluster = await startCluster(t, ...redisEnv(redisUrl()));
    const [one, two] = cluster.nodes as [ServerProcess, ServerProcess];
    const opened = await login(one.url, cluster.app, 'alice');
    const refresh = async (node: ServerProcess, refreshToken: string | undefined) =>
      postForm(`${node.url}/token`, cluster.app, {
        grant_type: 'refresh_token',
        refresh_token: refreshToken ?? '',
      });
    const second = await refresh(two, opened.refresh_token);
    assert.equal(second.status, 200);
    const third = await refresh(one, ((await second.json()) as TokenResponse).refresh_token);
    assert.equal(third.status, 200);
    const next = (await third.json()) as TokenResponse;
    // The first token, two rotations old, presented again on the other node: reuse, the family is revoked.
    const reuse = await refresh(two, opened.refresh_token);
    assert.equal(reuse.status, 400);
    const introspect = async (node: ServerProcess, token: string) =>
      (
        (await (await postForm(`${node.url}/introspect`, cluster.app, { token })).json()) as {
          active: boolean;
        }
      ).active;
    // Reuse revoked the family and session (written on node two): node one learns it within milliseconds.
    await within(
      5000,
      'node one sees the reuse revocation',
      async () => !(await introspect(one, next.access_token)),
    );
    assert.equal((await refresh(one, next.refresh_token)).status, 400, 'the family is dead on node one too');

    const bob = await login(two.url, cluster.app, 'bob');
    assert.equal(await introspect(one, bob.access_token), true);
    const revoked = await postForm(`${one.url}/revoke`, cluster.app, { token: bob.refresh_token ?? '' });
    assert.equal(revoked.status, 200);
    await within(
      5000,
      'node two sees the revocation',
      async () => !(await introspect(two, bob.access_token)),
    );
    for (const guard of cluster.guards) {
      await within(
        5000,
        `${guard.id} rejects`,
        async () => (await guard.check(bob.access_token)).status === 401,
      );
    }
  });

  test('kill -9 a node during a burst: every acknowledged revocation is in PostgreSQL and reaches every guard', async (t) => {
    const cluster = await startCluster(t, ...redisEnv(redisUrl()));
    const subjects = Array.from({ length: 3000 }, (_, i) => `killed-${i}`);
    let killed: Promise<void> | undefined;
    const { acknowledged, failed } = await revokeSubjects(cluster, subjects, (count) => {
      if (count === 500) killed ??= cluster.nodes[1]!.kill9();
    });
    await killed;
    assert.ok(failed > 0, 'requests to the killed node failed');
    const snapshot = await cluster.store.snapshot(Date.now());
    const stored = subjectsOf(snapshot.rules);
    const lost = acknowledged.filter((subject) => !stored.has(subject));
    assert.deepEqual(lost, [], 'every acknowledged revocation is in PostgreSQL');
    // Guards whose stream went to the killed node reconnect through the balancer to the surviving one.
    const convergedMs = await assertGuardsEqualStore(cluster, 'after the kill');
    t.diagnostic(
      `${acknowledged.length} acknowledged, ${failed} failed with the node; ${stored.size} in PostgreSQL ` +
        `(unacknowledged ones may have committed); every guard equal to the store ${convergedMs.toFixed(0)} ms later`,
    );
  });

  test('Redis restarted empty (no persistence) during a burst: every guard catches up, nothing missing', async (t) => {
    const cluster = await startCluster(t, ...redisEnv(redisUrl()));
    const subjects = Array.from({ length: 3000 }, (_, i) => `redis-restart-${i}`);
    let restarted: Promise<void> | undefined;
    const { acknowledged, failed } = await revokeSubjects(cluster, subjects, (count) => {
      if (count === 1000) restarted ??= redis.restart();
    });
    await restarted;
    assert.equal(failed, 0, 'Redis is fan-out only: no revocation fails with it');
    assert.equal(acknowledged.length, subjects.length);
    const convergedMs = await assertGuardsEqualStore(cluster, 'after the Redis restart');
    assert.deepEqual(subjectsOf((await cluster.store.snapshot(Date.now())).rules), new Set(subjects));
    // And the Redis guards are back on Redis (the stream restarted from the nodes' cursor).
    await within(
      15_000,
      'the Redis guards follow Redis again',
      async () => {
        const health = await Promise.all(cluster.guards.slice(2).map((guard) => guard.health()));
        return health.every((h) => h.feed === 'redis' && h.state === 'live');
      },
      100,
    );
    t.diagnostic(`every guard equal to the store ${convergedMs.toFixed(0)} ms after the burst`);
  });

  test('PostgreSQL stopped: writes answer 503 and nothing is written, guards keep enforcing; restarted: writes succeed', async (t) => {
    const cluster = await startCluster(t, ...redisEnv(redisUrl()));
    const token = await cluster.adminToken();
    const victim = await login(cluster.balancer.url, cluster.app, 'victim');
    const bystander = await login(cluster.balancer.url, cluster.app, 'bystander');
    const revoke = (node: ServerProcess, subject: string) =>
      fetch(`${node.url}/admin/subjects/${subject}/revoke`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'suspicious_activity' }),
      });
    assert.equal((await revoke(cluster.nodes[0]!, 'victim')).status, 200);
    await assertGuardsEqualStore(cluster, 'before the outage');
    const before = await cluster.store.snapshot(Date.now());

    await postgres.stop();
    t.after(() => (postgres.running ? undefined : postgres.restart()));
    for (const node of cluster.nodes) {
      const response = await revoke(node, 'bystander');
      assert.equal(response.status, 503);
      assert.ok(response.headers.get('retry-after'), 'Retry-After');
      assert.equal(((await response.json()) as { error: string }).error, 'temporarily_unavailable');
    }
    for (const guard of cluster.guards) {
      assert.equal((await guard.check(victim.access_token)).status, 401, `${guard.id} still rejects`);
      assert.equal((await guard.check(bystander.access_token)).status, 200, `${guard.id} still accepts`);
    }

    await postgres.restart();
    const afterRestart = await within(
      20_000,
      'writes succeed again on both nodes',
      async () => {
        const responses = await Promise.all(cluster.nodes.map((node, i) => revoke(node, `after-${i}`)));
        return responses.every((response) => response.status === 200);
      },
      200,
    );
    const after = await cluster.store.snapshot(Date.now());
    const subjects = subjectsOf(after.rules);
    assert.equal(subjects.has('bystander'), false, 'the refused revocation was not written');
    assert.ok(subjects.has('after-0') && subjects.has('after-1'));
    assert.ok(after.cursor > before.cursor);
    await assertGuardsEqualStore(cluster, 'after the restart');
    t.diagnostic(`writes succeeded again ${afterRestart.toFixed(0)} ms after PostgreSQL restarted`);
  });

  test('a three-master Redis Cluster carries the fan-out', async (t) => {
    const redisCluster = await startRedisCluster(3);
    t.after(() => redisCluster.stop());
    const nodes = redisCluster.nodes.map((node) => `${node.host}:${node.port}`).join(',');
    const cluster = await startCluster(
      t,
      { REVOKD_REDIS_CLUSTER_NODES: nodes },
      { GUARD_REDIS_CLUSTER_NODES: nodes },
    );
    const subjects = Array.from({ length: 2000 }, (_, i) => `cluster-${i}`);
    const { acknowledged } = await revokeSubjects(cluster, subjects);
    assert.equal(acknowledged.length, subjects.length);
    const convergedMs = await assertGuardsEqualStore(cluster, 'through Redis Cluster');
    const feeds = await Promise.all(cluster.guards.map(async (guard) => (await guard.health()).feed));
    assert.deepEqual(feeds.slice(2), ['redis', 'redis']);
    t.diagnostic(`every guard equal to the store ${convergedMs.toFixed(0)} ms after the burst`);
  });
});
