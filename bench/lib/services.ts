/**
 * Redis and PostgreSQL for the cluster-mode variants of the benchmarks: the test suite's throwaway servers
 * (`packages/server/test/support/{redis,postgres}.ts`), or, when their binaries are not installed, what to
 * install, so a benchmark reports the variant as not run instead of failing the suite. Any other failure to
 * start throws.
 */
import { spawnSync } from 'node:child_process';
import {
  findPostgresBinaries,
  type PostgresServer,
  startPostgres,
} from '../../packages/server/test/support/postgres.ts';
import { type RedisServer, startRedis } from '../../packages/server/test/support/redis.ts';

/** A service that could not start because it is not installed: `missing` says what to install. */
export interface Missing {
  readonly missing: string;
}

export function isMissing(service: object): service is Missing {
  return 'missing' in service;
}

/** A Redis server without persistence on a free loopback port, or what to install. */
export async function redisOrMissing(): Promise<RedisServer | Missing> {
  try {
    return await startRedis({ persistence: false });
  } catch (error) {
    // The harness's error names what to install; only a binary that does not run makes the variant skippable.
    const binaries = [process.env.REDIS_SERVER ?? 'redis-server', process.env.REDIS_CLI ?? 'redis-cli'];
    const absent = binaries.some((b) => spawnSync(b, ['--version'], { stdio: 'ignore' }).error !== undefined);
    if (absent) return { missing: (error as Error).message };
    throw error;
  }
}

/** A throwaway PostgreSQL server on a free loopback port, or what to install. */
export async function postgresOrMissing(): Promise<PostgresServer | Missing> {
  try {
    findPostgresBinaries();
  } catch (error) {
    return { missing: (error as Error).message };
  }
  return startPostgres();
}
