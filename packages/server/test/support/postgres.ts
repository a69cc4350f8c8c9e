/**
 * A throwaway PostgreSQL server for tests: `initdb` into a temporary folder, `postgres` on a free loopback port
 * with trust authentication, a fresh database per test, and the failures a cluster store must survive (a clean
 * stop, kill -9, a frozen server, a restart on the same data and port). Usable from any test file and from
 * end-to-end tests; every server started is killed when the process exits, whatever happens.
 *
 * `initdb` and `postgres` refuse to run as root, so as root they run as the `postgres` user.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  accessSync,
  chownSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import { freePort } from './process.ts';

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 20_000;
const INSTALL_HINT =
  'PostgreSQL server binaries (initdb, postgres) were not found on PATH or in /usr/lib/postgresql/*/bin: ' +
  'install them with `apt-get install postgresql` (Debian/Ubuntu; the tests need PostgreSQL 15 or later)';

export interface PostgresServer {
  readonly host: string;
  /** The port; the same across restarts. */
  readonly port: number;
  /** The data folder (owned by the `postgres` user when the tests run as root). */
  readonly dataDir: string;
  /** Whether the server process is running (it may be frozen). */
  readonly running: boolean;
  /** Connection URL of a database as the `postgres` superuser (trust authentication, no password). */
  url(database?: string): string;
  /**
   * Creates a fresh database and returns its URL: empty, or a copy of `template` (a database nobody is connected
   * to, e.g. one migrated once for many tests).
   */
  createDatabase(name?: string, options?: { template?: string | undefined }): Promise<string>;
  /** Drops a database, disconnecting whoever is still connected to it. */
  dropDatabase(name: string): Promise<void>;
  /** Fast shutdown (SIGINT: clients are disconnected, the data is checkpointed), and waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL to the server and every backend: a crash, as a power loss would leave it. */
  kill(): Promise<void>;
  /** SIGSTOP to the server and every backend: connections stay open and nothing answers, as in a partition. */
  freeze(): void;
  /** SIGCONT after {@link freeze}. */
  thaw(): void;
  /** Starts again on the same data folder and port (stopping first if it is running). */
  restart(): Promise<void>;
  /** The server's log so far (the last 256 KiB), for diagnostics. */
  output(): string;
  /** Stops the server if it runs and deletes the temporary folder. */
  destroy(): Promise<void>;
}

/** Where the PostgreSQL server binaries are. Throws with what to install when they are missing. */
export function findPostgresBinaries(): { initdb: string; postgres: string } {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  try {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // not a Debian layout
  }
  const find = (name: string) => {
    for (const dir of dirs) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        // next
      }
    }
    throw new Error(INSTALL_HINT);
  };
  return { initdb: find('initdb'), postgres: find('postgres') };
}

/** Uid and gid to run the server as: ourselves, or the `postgres` user when we are root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(
      `running as root, and there is no \`postgres\` user to run PostgreSQL as: ${INSTALL_HINT}`,
    );
  }
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) killTree(child.pid, 'SIGKILL');
});

/** Initialises a cluster in a new temporary folder and starts it on a free loopback port. */
export async function startPostgres(): Promise<PostgresServer> {
  const binaries = findPostgresBinaries();
  const user = serverUser();
  const root = mkdtempSync(join(tmpdir(), 'revokd-pg-'));
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'sock');
  mkdirSync(socketDir);
  if (user) {
    chownSync(root, user.uid, user.gid);
    chownSync(socketDir, user.uid, user.gid);
  }
  const asServer = { cwd: root, ...(user ?? {}) };
  try {
    execFileSync(
      binaries.initdb,
      ['-D', dataDir, '--auth=trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'],
      { ...asServer, stdio: 'pipe' },
    );
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`initdb failed: ${stderr || (error as Error).message}`);
  }
  const port = await freePort();
  let child: ChildProcess | undefined;
  let log = '';
  let databases = 0;

  const url = (database = 'postgres') => `postgres://postgres@${HOST}:${port}/${database}`;

  async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: url(), connectionTimeoutMillis: 5_000 });
    client.on('error', () => {});
    await client.connect();
    try {
      return await run(client);
    } finally {
      await client.end().catch(() => {});
    }
  }

  async function start(): Promise<void> {
    const server = spawn(
      binaries.postgres,
      [
        '-D',
        dataDir,
        '-p',
        String(port),
        '-k',
        socketDir,
        '-c',
        `listen_addresses=${HOST}`,
        '-c',
        'fsync=on',
        '-c',
        'max_connections=200',
        '-c',
        'shared_buffers=32MB',
        // Tests provoke deadlocks on purpose; the default (1 s) would make each one slow to resolve.
        '-c',
        'deadlock_timeout=200ms',
      ],
      { ...asServer, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-262_144);
    };
    server.stdout?.on('data', keep);
    server.stderr?.on('data', keep);
    live.add(server);
    server.once('exit', () => live.delete(server));
    child = server;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (server.exitCode !== null || server.signalCode !== null) {
        child = undefined;
        throw new Error(`postgres exited while starting:\n${log}`);
      }
      try {
        await admin(async (client) => client.query('SELECT 1'));
        return;
      } catch {
        // not accepting connections yet
      }
      if (Date.now() > deadline) {
        killTree(server.pid, 'SIGKILL');
        throw new Error(`postgres did not accept connections within ${START_TIMEOUT_MS} ms:\n${log}`);
      }
      await sleep(50);
    }
  }

  async function waitExit(server: ChildProcess, pids: readonly number[]): Promise<void> {
    if (server.exitCode === null && server.signalCode === null) {
      await new Promise((resolve) => server.once('exit', resolve));
    }
    // Backends outlive a killed postmaster briefly; a new one refuses to start while they hold shared memory.
    while (pids.some(alive)) await sleep(20);
    if (child === server) child = undefined;
  }

  async function stop(): Promise<void> {
    const server = child;
    if (!server) return;
    const pids = descendants(server.pid);
    killTree(server.pid, 'SIGCONT');
    server.kill('SIGINT');
    const timer = setTimeout(() => killTree(server.pid, 'SIGKILL', pids), 10_000);
    await waitExit(server, pids);
    clearTimeout(timer);
  }

  async function kill(): Promise<void> {
    const server = child;
    if (!server) return;
    const pids = descendants(server.pid);
    killTree(server.pid, 'SIGKILL', pids);
    await waitExit(server, pids);
  }

  await start();

  return {
    host: HOST,
    port,
    dataDir,
    get running() {
      return child !== undefined;
    },
    url,
    async createDatabase(name = `revokd_test_${++databases}`, options = {}) {
      const template = options.template === undefined ? '' : ` TEMPLATE "${options.template}"`;
      await admin((client) => client.query(`CREATE DATABASE "${name}"${template}`));
      return url(name);
    },
    async dropDatabase(name) {
      await admin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
    stop,
    kill,
    freeze() {
      if (child) killTree(child.pid, 'SIGSTOP');
    },
    thaw() {
      if (child) killTree(child.pid, 'SIGCONT');
    },
    async restart() {
      await stop();
      await start();
    },
    output: () => log,
    async destroy() {
      await kill();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** The pids of a process's descendants (Linux /proc), so a signal reaches the backends too. */
function descendants(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of /proc/PID/stat is the parent pid; the command name (field 2) may hold spaces, so split after it.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // exited meanwhile
    }
  }
  const found: number[] = [];
  const visit = (parent: number) => {
    for (const [child, ppid] of parents) {
      if (ppid === parent) {
        found.push(child);
        visit(child);
      }
    }
  };
  visit(pid);
  return found;
}

function killTree(pid: number | undefined, signal: NodeJS.Signals, known: readonly number[] = []): void {
  if (pid === undefined) return;
  for (const target of new Set([pid, ...known, ...descendants(pid)])) {
    try {
      process.kill(target, signal);
    } catch {
      // already gone
    }
  }
}

/** Whether a process still exists and is not a zombie (an orphaned backend waits to be reaped by init). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
