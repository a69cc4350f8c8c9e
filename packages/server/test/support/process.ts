/**
 * Real-process harness for end-to-end tests: runs `revokd serve` as a child process on a free loopback port,
 * with its own SQLite file, and the CLI as a child process.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const CLI = resolve(import.meta.dirname, '../../src/cli/main.ts');
const NODE_ARGS = ['--disable-warning=ExperimentalWarning', CLI];

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export interface ServerProcess {
  readonly url: string;
  readonly port: number;
  readonly dbPath: string;
  readonly child: ChildProcess;
  /** Output so far (stdout and stderr), for diagnostics. */
  output(): string;
  /** SIGKILL: no shutdown hooks, no flush. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
}

/** A fresh data folder for one test. */
export function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'revokd-e2e-'));
}

export function baseEnv(dbPath: string, port: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    REVOKD_DB_PATH: dbPath,
    REVOKD_PORT: String(port),
    REVOKD_HOST: '127.0.0.1',
    REVOKD_ISSUER: `http://127.0.0.1:${port}`,
    REVOKD_LOG_LEVEL: 'warn',
    REVOKD_RATE_LIMIT_ENABLED: 'false',
  };
}

/** Starts `revokd serve` and resolves once it answers `/healthz`. */
export async function startServer(
  options: { dbPath: string; port?: number; env?: NodeJS.ProcessEnv } = { dbPath: join(tempDataDir(), 'revokd.db') },
): Promise<ServerProcess> {
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [...NODE_ARGS, 'serve'], {
    env: { ...baseEnv(options.dbPath, port), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`revokd exited early (${child.exitCode}):\n${output}`);
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`revokd did not start within 15 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    port,
    dbPath: options.dbPath,
    child,
    output: () => output,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs the CLI against a database and returns stdout; rejects on a non-zero exit. */
export async function cli(dbPath: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [...NODE_ARGS, ...args], {
    env: { ...process.env, REVOKD_DB_PATH: dbPath, REVOKD_LOG_LEVEL: 'warn', ...env },
  });
  return stdout;
}

/** Registers a client through the CLI and returns its credentials. */
export async function addClientViaCli(
  dbPath: string,
  id: string,
  flags: string[] = ['--grant', 'client_credentials,refresh_token,token_exchange', '--audience', 'https://api.example.com'],
): Promise<{ client_id: string; client_secret: string }> {
  return JSON.parse(await cli(dbPath, ['client', 'add', id, ...flags]));
}
