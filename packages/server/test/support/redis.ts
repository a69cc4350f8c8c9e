/**
 * Real Redis for tests: `redis-server` processes on free loopback ports, a single instance or a three-master
 * Cluster, each in its own temporary folder, stopped by pid and cleaned up.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './process.ts';

const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
const REDIS_CLI = process.env.REDIS_CLI ?? 'redis-cli';
const run = promisify(execFile);

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** SIGTERM, wait for the exit, and remove its folder (its data). */
  stop(): Promise<void>;
  /** SIGKILL (a crash), and wait for the exit; the folder stays, for `restart()`. */
  kill(): Promise<void>;
  /**
   * Stops it (SIGTERM, if running) and starts it again on the same port: empty unless started with
   * persistence (and not `stop()`ped, which removed the data).
   */
  restart(): Promise<void>;
}

export interface RedisClusterNode {
  readonly host: string;
  readonly port: number;
}

export interface RedisCluster {
  readonly nodes: readonly RedisClusterNode[];
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` on a free loopback port, without persistence (`--save '' --appendonly no`) unless
 * `persistence` (append-only file, fsync always, in its temporary folder) is asked for.
 */
export async function startRedis(options: { persistence?: boolean } = {}): Promise<RedisServer> {
  await requireBinaries();
  return withFreshPorts(() => startRedisOnce(options));
}

async function startRedisOnce(options: { persistence?: boolean }): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'revokd-redis-'));
  const port = await freePort();
  const args = serverArgs(
    port,
    dir,
    options.persistence ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'],
  );
  let child: ChildProcess | undefined;
  try {
    child = await spawnRedis(args, port);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const exit = async (signal: NodeJS.Signals) => {
    const running = child;
    child = undefined;
    if (running) await killAndWait(running, signal);
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await exit('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    async kill() {
      await exit('SIGKILL');
    },
    async restart() {
      await exit('SIGTERM');
      mkdirSync(dir, { recursive: true });
      child = await spawnRedis(args, port);
    },
  };
}

/**
 * Starts a Redis Cluster of `masters` masters (no replicas) on free loopback ports whose cluster bus ports
 * (+10000) are free too, and waits for `cluster_state:ok` on every node.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  await requireBinaries();
  return withFreshPorts(() => startRedisClusterOnce(masters));
}

async function startRedisClusterOnce(masters: number): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'revokd-redis-cluster-'));
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.splice(0).map((child) => killAndWait(child, 'SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    while (ports.length < masters) {
      const port = await freePort();
      if (port + 10_000 <= 65_535 && !ports.includes(port) && (await isFree(port + 10_000))) ports.push(port);
    }
    for (const port of ports) {
      const args = serverArgs(port, dir, [
        '--appendonly',
        'no',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        '2000',
      ]);
      children.push(await spawnRedis(args, port));
    }
    await run(REDIS_CLI, [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    const deadline = Date.now() + 20_000;
    for (const port of ports) {
      for (;;) {
        const { stdout } = await run(REDIS_CLI, ['-p', String(port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`redis cluster node ${port} not ok: ${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return { nodes: ports.map((port) => ({ host: '127.0.0.1', port })), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Other tests (in other processes) pick free ports at the same time: a port found free may be taken before
 * redis-server binds it. Such a start fails fast and is tried again on new ports.
 */
async function withFreshPorts<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (attempt >= attempts) throw error;
    }
  }
}

/** redis-server on loopback `port`, its files in `dir`, no RDB snapshots; `extra` says the rest. */
function serverArgs(port: number, dir: string, extra: readonly string[]): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...extra];
}

async function requireBinaries(): Promise<void> {
  for (const binary of [REDIS_SERVER, REDIS_CLI]) {
    try {
      await run(binary, ['--version']);
    } catch {
      throw new Error(`${binary} not found: install Redis ≥ 7 (apt-get install redis-server)`);
    }
  }
}

/** Spawns redis-server and resolves once it answers PING. */
async function spawnRedis(args: readonly string[], port: number): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}):\n${output}`);
    try {
      // The answer must come from this child: another process may have taken the port since it was found free.
      const { stdout } = await run(REDIS_CLI, ['-p', String(port), 'info', 'server']);
      if (new RegExp(`^process_id:${child.pid}\\s*$`, 'm').test(stdout)) return child;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await killAndWait(child, 'SIGKILL');
      throw new Error(`redis-server did not answer PING on ${port} within 10 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
