/**
 * Guard processes for the end-to-end tests (each runs support/guard-process.ts: node:http + createGuard), and
 * the polling helpers the tests assert propagation with. (Not a test file: the e2e glob only runs `*.test.ts`.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

export { within } from '../../test/support/poll.ts';

const GUARD_SCRIPT = resolve(import.meta.dirname, 'guard-process.ts');

export interface GuardHealth {
  guardId: string;
  state: string;
  cursor: number;
  activeRules: number;
  /** The feed transport in use (`http`, `redis`). */
  feed?: string;
  reportedCursor?: number;
  reconnects: number;
  lastError?: { code: string; message: string };
  events: { snapshot: number; reset: number; resumedFrom: number[] };
}

export interface CheckResult {
  status: number;
  body: { ok: boolean; sub?: string; stale?: boolean; reason?: string; revokedBy?: string };
}

export interface GuardProcess {
  readonly id: string;
  readonly child: ChildProcess;
  check(token: string): Promise<CheckResult>;
  health(): Promise<GuardHealth>;
  stop(): Promise<void>;
}

/** Starts a guard process configured by `env` (see guard-process.ts) and resolves once it is ready and listening. */
export async function startGuard(env: Record<string, string>): Promise<GuardProcess> {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', GUARD_SCRIPT], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const started = await new Promise<{ port: number; guardId: string }>((resolveStart, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`guard did not start:\n${stderr}`)), 15_000);
    child.stdout?.on('data', (chunk) => {
      stdout += chunk;
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n') && line) {
        clearTimeout(timer);
        resolveStart(JSON.parse(line));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`guard exited (${code}):\n${stderr}`));
    });
  });
  const base = `http://127.0.0.1:${started.port}`;
  return {
    id: started.guardId,
    child,
    async check(token) {
      const response = await fetch(`${base}/check`, { headers: { authorization: `Bearer ${token}` } });
      return { status: response.status, body: (await response.json()) as CheckResult['body'] };
    },
    async health() {
      return (await (await fetch(`${base}/health`)).json()) as GuardHealth;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}
