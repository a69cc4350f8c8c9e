/**
 * Real-process harness for end-to-end tests: runs `revokd serve` as a child process on a free loopback port,
 * and the CLI as a child process. Each takes a store location: a SQLite file path, or a `postgres://` URL
 * (cluster mode).
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
  /** SIGTERM and wait for exit; SIGKILL if it has not exited after `timeoutMs` (default 10 s). */
  stop(timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (null when killed by a signal) and the signal, once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A fresh data folder for one test. */
export function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'revokd-e2e-'));
}

/** The environment that points revokd at a store: a SQLite file path, or a `postgres://` URL. */
export function storeEnv(location: string): NodeJS.ProcessEnv {
  return /^postgres(ql)?:\/\//.test(location)
    ? { REVOKD_DATABASE_URL: location }
    : { REVOKD_DB_PATH: location };
}

export function baseEnv(dbPath: string, port: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...storeEnv(dbPath),
    REVOKD_PORT: String(port),
    REVOKD_HOST: '127.0.0.1',
    REVOKD_ISSUER: `http://127.0.0.1:${port}`,
    REVOKD_LOG_LEVEL: 'warn',
    REVOKD_RATE_LIMIT_ENABLED: 'false',
  };
}

/** Starts `revokd serve` and resolves once it answers `/healthz`. */
export async function startServer(
  options: { dbPath: string; port?: number; env?: NodeJS.ProcessEnv } = {
    dbPath: join(tempDataDir(), 'revokd.db'),
  },
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
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) =>
    child.once('exit', (code, signal) => resolveExit({ code, signal })),
  );
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
    exited,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop(timeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs the CLI against a database and returns stdout; rejects on a non-zero exit. */
export async function cli(dbPath: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [...NODE_ARGS, ...args], {
    env: { ...process.env, ...storeEnv(dbPath), REVOKD_LOG_LEVEL: 'warn', ...env },
  });
  return stdout;
}

export interface CliResult {
  /** Exit code, or null when the process was killed (see `signal`). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the CLI and resolves with its exit code and output, whatever the exit code. A run that outlives
 * `timeoutMs` (default 20 s) is killed and resolves with `signal: 'SIGTERM'`.
 */
export function cliResult(
  dbPath: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<CliResult> {
  return new Promise((resolveResult) => {
    const child = execFile(
      process.execPath,
      [...NODE_ARGS, ...args],
      {
        env: { ...process.env, ...storeEnv(dbPath), REVOKD_LOG_LEVEL: 'warn', ...env },
        timeout: timeoutMs,
      },
      (_error, stdout, stderr) => {
        resolveResult({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
      },
    );
  });
}

/** Registers a client through the CLI and returns its credentials. */
export async function addClientViaCli(
  dbPath: string,
  id: string,
  flags: string[] = [
    '--grant',
    'client_credentials,refresh_token,token_exchange',
    '--audience',
    'https://api.example.com',
  ],
): Promise<{ client_id: string; client_secret: string }> {
  return JSON.parse(await cli(dbPath, ['client', 'add', id, ...flags]));
}
