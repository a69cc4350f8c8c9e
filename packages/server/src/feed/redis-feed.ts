import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { RevocationService } from '../services/revocation.ts';
import type { Store } from '../store/port.ts';
import { RedisGuardStore } from './redis-guards.ts';
import { RedisRelay, type RelayLogger } from './redis-relay.ts';

type RedisFeedConfig = NonNullable<Config['feed']['redis']>;

/**
 * The node's part of the Redis fan-out: a client, the relay that publishes every entry this node applies, and the
 * guard registry the nodes share (receipts, `wait_ms`, `/admin/guards` across the cluster).
 */
export interface RedisFeed {
  readonly relay: RedisRelay;
  readonly guards: RedisGuardStore;
  close(): Promise<void>;
}

/**
 * Connects to Redis (or a Redis Cluster) and relays the log this node applies to the feed stream. Redis is fan-out
 * only: it never fails or delays a revocation; while it is down the relay retries, and catches up from the store.
 */
export function startRedisFeed(
  redis: RedisFeedConfig,
  deps: { store: Store; clock: Clock; revocation: RevocationService; logger: RelayLogger },
): RedisFeed {
  const client = connect(redis);
  const relay = new RedisRelay({
    client,
    streamKey: redis.streamKey,
    maxLength: redis.maxLength,
    heartbeatMs: redis.heartbeatMs,
    readLog: (after, limit) => deps.store.readLog(after, limit),
    cursor: () => deps.revocation.index.cursor,
    now: () => deps.clock.nowMs(),
    logger: deps.logger,
  });
  const unsubscribe = deps.revocation.onApplied((entries) => relay.publish(entries));
  relay.start();
  const guards = new RedisGuardStore({ client, streamKey: redis.streamKey });
  return {
    relay,
    guards,
    async close() {
      unsubscribe();
      await relay.close();
      guards.close();
      client.disconnect();
    },
  };
}

function connect(redis: RedisFeedConfig): Redis | Cluster {
  // Commands fail at once while Redis is down instead of queueing: the relay retries from the log on its next tick.
  const options: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1 };
  const client =
    redis.clusterNodes !== undefined
      ? new Cluster(redis.clusterNodes.map(hostPort), { redisOptions: options, enableOfflineQueue: false })
      : new Redis(redis.url ?? '', options);
  // Connection errors are the relay's to count and log; unhandled, ioredis would print every reconnect attempt.
  client.on('error', () => {});
  return client;
}

function hostPort(node: string): { host: string; port: number } {
  const at = node.lastIndexOf(':');
  return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
}
