/**
 * Token service throughput: revokd next to `oidc-provider`, in the same run, both real HTTP servers in child
 * processes on loopback ports, driven by a load generator in a third process (1 and 16 concurrent clients, each
 * one request in flight over its own keep-alive connection; every answer checked). Per operation:
 *
 * - issuance: client credentials (`client_secret_basic`) for a resource, a JWT access token (EdDSA) each;
 * - refresh rotation: `grant_type=refresh_token`, a new JWT access token and a new refresh token, the presented one
 *   spent; each client rotates its own chain;
 * - revocation (RFC 7009) of distinct access tokens, minted before the batch (not timed);
 * - introspection (RFC 7662) of live access tokens.
 *
 * revokd runs on its embedded store (a SQLite file, WAL, durable commits) and on its cluster store (one node on a
 * throwaway PostgreSQL server started by the test harness, `packages/server/test/support/postgres.ts`; reported as
 * not run, with what to install, when PostgreSQL is missing). oidc-provider, which ships no durable adapter, runs on
 * three (`lib/oidc-adapters.ts`): SQLite and PostgreSQL (each write durable before it returns) and in memory. Ratios
 * are taken within a round: each revokd store ÷ oidc-provider on the same engine (judged), and ÷ oidc-provider in
 * memory (shown beside). A server that does no work (`lib/token-service-floor.ts`) is measured side by side as the
 * harness floor: the most any server can show here. The cost of one durable commit on this machine (SQLite, synced;
 * PostgreSQL, one INSERT committed over a connection) is measured in the same run, since refresh rotation and
 * revocation wait for theirs.
 *
 * Target: revokd ≥ 2× oidc-provider for each operation, on each store, like for like (issue 4, part 6).
 * Reproduce: `npm run bench -- token-service` (`--quick`, `--smoke`).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { migratePostgres } from '../packages/server/src/store/postgres/migrations.ts';
import type { PostgresServer } from '../packages/server/test/support/postgres.ts';
import { type Contender, type ContenderResult, sideBySide } from './lib/measure.ts';
import { basicAuthorization, openSessions, revokdTarget } from './lib/revokd-client.ts';
import { isMissing, postgresOrMissing } from './lib/services.ts';
import { summarize } from './lib/stats.ts';
import type { Answer, Message, Op, Target } from './lib/token-service-load.ts';
import type { BenchOptions, BenchResult, Row } from './lib/types.ts';
import { byMode } from './lib/types.ts';

export const name = 'token-service';
export const title = 'Token service throughput, revokd and oidc-provider';

const API = 'https://api.example.com';
const OPAQUE_API = 'https://opaque.example.com';
const CLIENT_ID = 'bench';
const SCOPE = 'api:read';
const TARGET_RATIO = 2;
const CLIENTS = [1, 16] as const;
const REVOKD = 'revokd (SQLite)';
const CLUSTER = 'revokd (PostgreSQL)';
const OIDC_SQLITE = 'oidc-provider (SQLite)';
const OIDC_POSTGRES = 'oidc-provider (PostgreSQL)';
const OIDC_MEMORY = 'oidc-provider (in memory)';
const FLOOR = 'no-op server (harness floor)';
/** Each revokd store and the oidc-provider it is judged against: the same durability, on the same engine. */
const LIKE_FOR_LIKE: ReadonlyArray<readonly [revokd: string, oidc: string]> = [
  [REVOKD, OIDC_SQLITE],
  [CLUSTER, OIDC_POSTGRES],
];

const OPS: ReadonlyArray<{ op: Op; label: string }> = [
  { op: 'issue', label: 'issuance (client credentials)' },
  { op: 'refresh', label: 'refresh rotation' },
  { op: 'revoke', label: 'revocation' },
  { op: 'introspect', label: 'introspection' },
];

/** A forked child and its messages, one request at a time. */
class Child {
  readonly process: ChildProcess;
  private stderr = '';
  private waiting: ((message: unknown) => void) | undefined;
  private readonly queue: unknown[] = [];
  private exited = false;

  readonly label: string;

  constructor(label: string, script: string, args: readonly string[]) {
    this.label = label;
    this.process = fork(new URL(script, import.meta.url), args, {
      execArgv: ['--disable-warning=ExperimentalWarning'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.process.stderr!.setEncoding('utf8');
    this.process.stderr!.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    this.process.on('message', (message) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      if (waiting) waiting(message);
      else this.queue.push(message);
    });
    this.process.on('exit', (code, signal) => {
      this.exited = true;
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.({ exited: `${this.label} exited (${code ?? signal}): ${this.stderr.trim()}` });
    });
  }

  /** The next message from the child (optionally after sending one). */
  async next<T>(send?: unknown): Promise<T> {
    if (send !== undefined) this.process.send(send as object);
    const message =
      this.queue.length > 0
        ? this.queue.shift()
        : this.exited
          ? { exited: `${this.label} has exited: ${this.stderr.trim()}` }
          : await new Promise<unknown>((resolve) => {
              this.waiting = resolve;
            });
    if (typeof message === 'object' && message !== null && 'exited' in message) {
      throw new Error(String(message.exited));
    }
    return message as T;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const exit = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 3000);
    await exit;
    clearTimeout(timer);
  }
}

/**
 * Latency of one SQLite commit synced to disk on this machine, in milliseconds: the wait a durable write adds to a
 * lone request. One row per transaction, WAL with `synchronous = FULL`: what revokd's embedded store makes durable
 * before answering a lone write (it commits, then syncs the WAL itself).
 */
function commitLatencyMs(dir: string, commits: number) {
  const db = new DatabaseSync(join(dir, 'fsync-probe.db'));
  try {
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE probe (n INTEGER)');
    const insert = db.prepare('INSERT INTO probe VALUES (?)');
    const samples: number[] = [];
    for (let i = 0; i < commits; i++) {
      const start = performance.now();
      db.exec('BEGIN IMMEDIATE');
      insert.run(i);
      db.exec('COMMIT');
      samples.push(performance.now() - start);
    }
    return summarize(samples);
  } finally {
    db.close();
  }
}

/**
 * Latency of one durable PostgreSQL commit as a revokd node sees it, in milliseconds: one `INSERT` in its own
 * transaction over an open connection (loopback), the server fsyncing its WAL before it answers.
 */
async function postgresCommitMs(url: string, commits: number) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('CREATE TABLE commit_probe (n integer)');
    const version = String((await client.query('SHOW server_version')).rows[0].server_version);
    const samples: number[] = [];
    for (let i = 0; i < commits; i++) {
      const start = performance.now();
      await client.query('INSERT INTO commit_probe VALUES ($1)', [i]);
      samples.push(performance.now() - start);
    }
    return { ...summarize(samples), version };
  } finally {
    await client.end();
  }
}

/**
 * Time of one Ed25519 signature and one verification with `node:crypto` on this machine, in milliseconds: the
 * least a token issuance and a JWT revocation cost (revokd verifies a presented JWT before writing its rule).
 */
function ed25519Ms(iterations: number) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const data = randomBytes(300);
  const signature = sign(null, data, privateKey);
  const time = (work: () => unknown) => {
    const samples: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const start = performance.now();
      work();
      samples.push(performance.now() - start);
    }
    return summarize(samples).median;
  };
  return {
    sign: time(() => sign(null, data, privateKey)),
    verify: time(() => verify(null, data, publicKey, signature)),
  };
}

/** `a ÷ b` round by round (both measured in the same rounds). */
function ratioPerRound(a: ContenderResult, b: ContenderResult) {
  return summarize(a.rate.samples.map((rate, r) => rate / b.rate.samples[r]!));
}

function micros(ms: number): string {
  return `${Math.round(ms * 1000)} µs`;
}

export async function run({ mode, progress }: BenchOptions): Promise<BenchResult> {
  const windowMs = byMode(mode, { full: 700, quick: 400, smoke: 15 });
  const samples = byMode(mode, { full: 4, quick: 3, smoke: 1 });
  const warmup = byMode(mode, { full: 1, quick: 1, smoke: 0 });
  const revokePool = byMode(mode, { full: 1500, quick: 400, smoke: 5 });
  const introspectPool = byMode(mode, { full: 256, quick: 64, smoke: 4 });
  const calibrateMs = byMode(mode, { full: 250, quick: 150, smoke: 10 });
  const probeCommits = byMode(mode, { full: 500, quick: 200, smoke: 5 });

  const secret = randomBytes(24).toString('base64url');
  const dir = mkdtempSync(join(tmpdir(), 'revokd-bench-tokens-'));
  const children: Child[] = [];
  let postgres: PostgresServer | undefined;
  try {
    progress.step('starting PostgreSQL (cluster store)');
    const postgresOrWhy = await postgresOrMissing();
    const clusterMissing = isMissing(postgresOrWhy) ? `not run: ${postgresOrWhy.missing}` : undefined;
    let clusterUrl: string | undefined;
    let oidcUrl: string | undefined;
    let probeUrl: string | undefined;
    if (clusterMissing !== undefined) progress.step(`revokd (PostgreSQL) ${clusterMissing}`);
    else {
      postgres = postgresOrWhy as PostgresServer;
      clusterUrl = await postgres.createDatabase('revokd_bench');
      oidcUrl = await postgres.createDatabase('oidc_provider_bench');
      probeUrl = await postgres.createDatabase('commit_probe');
      await migratePostgres(clusterUrl);
    }
    const clusterServer =
      clusterUrl === undefined
        ? undefined
        : new Child('revokd server (PostgreSQL)', './lib/token-service-revokd.ts', [
            clusterUrl,
            API,
            CLIENT_ID,
            secret,
          ]);
    if (clusterServer) children.push(clusterServer);
    const revokdServer = new Child('revokd server', './lib/token-service-revokd.ts', [
      dir,
      API,
      CLIENT_ID,
      secret,
    ]);
    children.push(revokdServer);
    const oidcChild = (name: string, store: string) =>
      new Child(name, './lib/token-service-oidc.ts', [API, OPAQUE_API, CLIENT_ID, secret, store]);
    const oidcServers = new Map<string, Child>([
      [OIDC_MEMORY, oidcChild(OIDC_MEMORY, 'memory')],
      [OIDC_SQLITE, oidcChild(OIDC_SQLITE, `sqlite:${join(dir, 'oidc-provider.db')}`)],
      ...(oidcUrl === undefined
        ? []
        : [[OIDC_POSTGRES, oidcChild(OIDC_POSTGRES, `postgres:${oidcUrl}`)] as const]),
    ]);
    children.push(...oidcServers.values());
    const floorServer = new Child('no-op server', './lib/token-service-floor.ts', []);
    children.push(floorServer);
    const load = new Child('load generator', './lib/token-service-load.ts', []);
    children.push(load);
    const portOf = (child: Child) => child.next<{ port: number }>().then((m) => m.port);
    const [revokdPort, floorPort, clusterPort, oidcPorts] = await Promise.all([
      portOf(revokdServer),
      portOf(floorServer),
      clusterServer && portOf(clusterServer),
      Promise.all([...oidcServers].map(async ([name, child]) => [name, await portOf(child)] as const)),
    ]);
    progress.step(
      `servers up: revokd on :${revokdPort}, no-op on :${floorPort}` +
        (clusterPort === undefined ? '' : `, revokd (PostgreSQL) on :${clusterPort}`) +
        oidcPorts.map(([name, port]) => `, ${name} on :${port}`).join(''),
    );
    const commitMs = commitLatencyMs(dir, probeCommits);
    const pgCommitMs = probeUrl === undefined ? undefined : await postgresCommitMs(probeUrl, probeCommits);
    const cryptoMs = ed25519Ms(probeCommits);
    progress.step(
      `one SQLite commit synced: ${commitMs.median.toFixed(2)} ms` +
        (pgCommitMs === undefined ? '' : `, one PostgreSQL commit: ${pgCommitMs.median.toFixed(2)} ms`) +
        ` (medians of ${probeCommits})`,
    );

    const authorization = basicAuthorization(CLIENT_ID, secret);
    const ccBody = (resource: string) =>
      new URLSearchParams({ grant_type: 'client_credentials', resource, scope: SCOPE }).toString();
    const revokdAt = (name: string, port: number) => revokdTarget(name, port, authorization, API);
    const targets = new Map<string, Target>([
      [REVOKD, revokdAt(REVOKD, revokdPort)],
      ...(clusterPort === undefined ? [] : [[CLUSTER, revokdAt(CLUSTER, clusterPort)] as const]),
      ...oidcPorts.map(
        ([name, port]) =>
          [
            name,
            {
              name,
              port,
              tokenPath: '/token',
              revokePath: '/token/revocation',
              introspectPath: '/token/introspection',
              authorization,
              issueBody: ccBody(API),
              // oidc-provider refuses to revoke or introspect its JWT access tokens: opaque ones, from a second
              // resource.
              poolBody: ccBody(OPAQUE_API),
            },
          ] as const,
      ),
      [
        FLOOR,
        {
          name: FLOOR,
          port: floorPort,
          tokenPath: '/token',
          revokePath: '/revoke',
          introspectPath: '/introspect',
          authorization,
          issueBody: ccBody(API),
          poolBody: ccBody(API),
        },
      ],
    ]);
    const ask = async (message: Message): Promise<number> => {
      const answer = await load.next<Answer>(message);
      if (!answer.ok) throw new Error(answer.error);
      return answer.ops;
    };

    // Refresh chains, one per client: revokd sessions opened by token exchange (its login for trusted backends),
    // oidc-provider refresh tokens minted through its models (it has no login without an interactive one).
    const chains = Math.max(...CLIENTS);
    for (const name of [REVOKD, CLUSTER]) {
      const target = targets.get(name);
      if (target)
        await ask({
          type: 'chains',
          target,
          refreshTokens: await openSessions(target.port, authorization, API, chains),
        });
    }
    for (const [name, child] of oidcServers) {
      const seeded = await child.next<{ refreshTokens?: string[]; error?: string }>({ seed: chains });
      if (!seeded.refreshTokens) throw new Error(`${name} seeding: ${seeded.error}`);
      await ask({ type: 'chains', target: targets.get(name)!, refreshTokens: seeded.refreshTokens });
    }
    const floorChains = Array.from({ length: chains }, (_, i) => `floor-chain-${i}`);
    await ask({ type: 'chains', target: targets.get(FLOOR)!, refreshTokens: floorChains });

    for (const target of targets.values()) {
      await ask({ type: 'prepare', target, op: 'introspect', count: introspectPool });
    }

    const rows: Row[] = [];
    const notes: string[] = [];
    /** Per case: revokd (PostgreSQL) ÷ revokd (SQLite), within rounds. */
    const clusterToEmbedded: string[] = [];
    /** Per case (`op:clients`), each contender's median rate. */
    const medians = new Map<string, Map<string, number>>();
    for (const { op, label } of OPS) {
      for (const clients of CLIENTS) {
        const group = `${label} · ${clients} client${clients === 1 ? '' : 's'}`;
        // sideBySide divides a contender's `ops` by the batch's time, so every batch performs a count fixed
        // beforehand: for revocation its pool, otherwise what fitted in a calibration window of the same length.
        const contenders: Contender[] = [];
        for (const target of targets.values()) {
          const count =
            op === 'revoke'
              ? revokePool
              : Math.max(
                  clients,
                  await ask({ type: 'run', target, op, clients, windowMs: calibrateMs }).then((ops) =>
                    Math.round((ops * windowMs) / calibrateMs),
                  ),
                );
          contenders.push({
            name: target.name,
            ops: count,
            async prepare() {
              if (op === 'revoke') await ask({ type: 'prepare', target, op, count });
            },
            async batch() {
              const done = await ask({ type: 'run', target, op, clients, count });
              if (done !== count) throw new Error(`${target.name}: ${done} of ${count} operations`);
            },
          });
        }
        const results = await sideBySide(contenders, {
          samples,
          warmup,
          baseline: OIDC_MEMORY,
          onRound: (round, total) => progress.step(`${group}: round ${round}/${total}`),
        });
        const at = (name: string) => results.get(name);
        medians.set(`${op}:${clients}`, new Map([...results].map(([name, r]) => [name, r.rate.median])));
        const cluster = at(CLUSTER);
        if (cluster) {
          const perRound = ratioPerRound(cluster, at(REVOKD)!);
          clusterToEmbedded.push(
            `${group} ${perRound.median.toFixed(2)}× (${perRound.min.toFixed(2)}–${perRound.max.toFixed(2)}×)`,
          );
        }
        const opaque = op === 'revoke' || op === 'introspect' ? { note: 'opaque access tokens' } : {};
        for (const [ours, theirs] of LIKE_FOR_LIKE) {
          const mine = at(ours);
          const baseline = at(theirs);
          if (!mine || !baseline) {
            rows.push({
              group,
              subject: ours,
              unit: 'ops/s',
              value: undefined,
              note: 'not run: PostgreSQL missing',
            });
            continue;
          }
          const ratio = ratioPerRound(mine, baseline);
          rows.push({
            group,
            subject: ours,
            unit: 'ops/s',
            value: mine.rate,
            ratio: { to: theirs, value: ratio },
            also: { to: OIDC_MEMORY, label: 'in memory', value: mine.ratio! },
            target: { text: `≥ ${TARGET_RATIO}× ${theirs}`, met: ratio.median >= TARGET_RATIO },
          });
        }
        for (const name of [OIDC_SQLITE, OIDC_POSTGRES, OIDC_MEMORY]) {
          const result = at(name);
          rows.push(
            result
              ? { group, subject: name, unit: 'ops/s', value: result.rate, ...opaque }
              : {
                  group,
                  subject: name,
                  unit: 'ops/s',
                  value: undefined,
                  note: 'not run: PostgreSQL missing',
                },
          );
        }
        const floor = at(FLOOR)!;
        rows.push({
          group,
          subject: FLOOR,
          unit: 'ops/s',
          value: floor.rate,
          ratio: { to: OIDC_MEMORY, value: floor.ratio! },
          note: 'does no work: the most any server can show here',
        });
      }
    }
    const rate = (op: Op, clients: number, name: string) => medians.get(`${op}:${clients}`)?.get(name) ?? NaN;
    const times = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
    const ops = (n: number) => `${Math.round(n).toLocaleString('en-US')} ops/s`;
    notes.push(
      'Every server is a real HTTP server in its own process on loopback; the load generator is another ' +
        'process (`node:http`, keep-alive, one request in flight per client, every answer checked). The machine ' +
        'has 2 cores: the load generator takes CPU from the server it drives, equally for all.',
      'revokd: `createRuntime` + `buildApp` as `revokd serve` wires them, EdDSA, rate limits off, log level ' +
        '`warn`; on its embedded store (SQLite, WAL, every write synced to disk before it is answered) and on its ' +
        'cluster store (PostgreSQL). oidc-provider 9, configured for the same work: features ' +
        '`clientCredentials`, `introspection`, `revocation`, `resourceIndicators` (resource server with ' +
        '`accessTokenFormat: jwt`, EdDSA), `rotateRefreshToken: true`; the same client (`client_secret_basic`, ' +
        'scope `api:read`). It ships no durable storage adapter, so it runs on three, written the usual way ' +
        '(`lib/oidc-adapters.ts`, one statement per adapter call): **SQLite** (WAL, `synchronous = FULL`: each ' +
        'write durable before it returns, as revokd guarantees), **PostgreSQL** (a pool of 10, each write ' +
        'committed) and **in memory** (a `Map`: nothing durable, nothing survives a restart). ' +
        'The targets compare like with like: revokd on SQLite with oidc-provider on SQLite, revokd on ' +
        'PostgreSQL with oidc-provider on PostgreSQL (the first ratio in each revokd cell). The second ratio, ' +
        '"in memory", is revokd against oidc-provider keeping everything in memory: reported, not judged, since ' +
        'a token service that acknowledges only what is durable cannot be held to the speed of one that keeps ' +
        'nothing (the bound below says how far that goes).',
      'Refresh rotation: revokd sessions are opened by token exchange before the run. oidc-provider mints refresh ' +
        'tokens only through `authorization_code` (an interactive login), so its refresh tokens are created ' +
        'beforehand through its own models (`Grant`, `RefreshToken`), as a login would leave them; the timed ' +
        'part is the `refresh_token` grant over HTTP on both.',
      'Revocation and introspection: oidc-provider answers `unsupported_token_type` for its JWT access tokens ' +
        '(structured tokens cannot be revoked or introspected there), so it is measured on opaque access tokens ' +
        '(client credentials for a second resource with `accessTokenFormat: opaque`), whose revocation deletes ' +
        'a row (or a `Map` entry) by id. revokd revokes and introspects the JWT access tokens it issues: a ' +
        'revocation verifies the token (required before a rule is written) and commits a rule durably before ' +
        'answering.',
      `Per batch: a fixed number of requests, about ${windowMs} ms' worth (counted in a ${calibrateMs} ms ` +
        `calibration run per server); revocation: ${revokePool} distinct tokens, minted before the batch, not timed.`,
      clusterMissing !== undefined
        ? `revokd (PostgreSQL) and oidc-provider (PostgreSQL): ${clusterMissing}.`
        : 'PostgreSQL: one revokd node (`store: { kind: postgres }`, a pool of 10 connections, schema by ' +
            '`migratePostgres`, no Redis: fan-out plays no part in these operations) and oidc-provider, each on ' +
            `its own database of a throwaway PostgreSQL ${pgCommitMs?.version ?? ''} that the test harness starts ` +
            'on this machine (`fsync=on`, `shared_buffers=32MB`; its backends share the 2 cores with the rest). ' +
            `One PostgreSQL commit (an INSERT over an open connection) took ${micros(pgCommitMs!.median)} ` +
            `(q3 ${micros(pgCommitMs!.q3)}), one SQLite commit synced to disk ${micros(commitMs.median)}. ` +
            `Within rounds, revokd (PostgreSQL) ÷ revokd (SQLite): ${clusterToEmbedded.join('; ')}.`,
      "Where revokd's time goes (profiled with `node --cpu-prof` and the inspector on the server under this " +
        'load): the Ed25519 signature of each access token (~27 µs with `crypto.sign`) and the verification of ' +
        'each revoked token (~64 µs with `crypto.verify`); socket writes; the client lookup of client ' +
        'authentication (a SQLite read). On SQLite, the sync of each commit no longer stops the event loop ' +
        '(it did for 35–40 % of the time): the WAL is synced on the thread pool while requests go on ' +
        '(docs/architecture.md, "Durability and the log"). On PostgreSQL a write costs round trips and statements ' +
        '(their system calls wake the PostgreSQL backends, which share the 2 cores): the write batcher pipelines ' +
        "its statements, sends each batch's last statement with COMMIT, inserts every audit event of a batch " +
        'with its log append, runs named prepared statements and up to four batches at once (a rotation is 5 ' +
        'statements in 3 round trips, a one-token revocation 3 statements in 1). Issuance and introspection do ' +
        'not wait for their audit event: it is written after the answer, batched (`AuditTrail`).',
    );
    // At 1 client, requests are strictly sequential: the best a server doing the least work this operation needs
    // can reach is one per (harness round trip + that work).
    const bound = (op: Op, workMs: number) => 1 / (1 / rate(op, 1, FLOOR) + workMs / 1000);
    const memory = (op: Op) => rate(op, 1, OIDC_MEMORY);
    const refreshBest = bound('refresh', commitMs.median + cryptoMs.sign);
    const revokeBest = bound('revoke', commitMs.median + cryptoMs.verify);
    const verdict = (best: number, oidc: number) =>
      best / oidc < TARGET_RATIO
        ? `below ${TARGET_RATIO}×, whatever the server does`
        : `so durability alone does not rule ${TARGET_RATIO}× out`;
    notes.push(
      `Harness floor: the no-op server reaches ${ops(rate('introspect', 1, FLOOR))} at 1 client and ` +
        `${ops(rate('introspect', 16, FLOOR))} at 16 (the load generator shares the 2 cores with the server it ` +
        `drives): ${times(rate('revoke', 1, FLOOR), memory('revoke'))} oidc-provider in memory's revocation at 1 ` +
        'client, the most any server can show here.',
      'The bound against oidc-provider in memory: refresh rotation and revocation answer only once their commit ' +
        `is on disk (one SQLite commit synced: median ${micros(commitMs.median)}, q3 ${micros(commitMs.q3)} in ` +
        `this run); a refresh also signs an access token (Ed25519 ${micros(cryptoMs.sign)}), a revocation ` +
        `verifies the presented one (${micros(cryptoMs.verify)}). At 1 client a server doing nothing else would ` +
        'reach 1 / (floor round trip + commit + that signature): refresh ' +
        `${ops(refreshBest)}, ${times(refreshBest, memory('refresh'))} oidc-provider in memory, ` +
        `${verdict(refreshBest, memory('refresh'))}; revocation ${ops(revokeBest)}, ` +
        `${times(revokeBest, memory('revoke'))}, ${verdict(revokeBest, memory('revoke'))}. At 16 clients one ` +
        `verification per revocation bounds revokd to ${ops(1000 / cryptoMs.verify)} on its one event-loop ` +
        `thread before any other work; ${TARGET_RATIO}× oidc-provider in memory would take ` +
        `${ops(TARGET_RATIO * rate('revoke', 16, OIDC_MEMORY))}.`,
      `revokd remembers verified tokens, so a token introspected again skips its signature (as here: ` +
        `${introspectPool} tokens in turn); the distinct tokens of a revocation batch never do.`,
    );
    return {
      name,
      title,
      params: {
        clients: CLIENTS.join(' and '),
        'window per batch': `${windowMs} ms`,
        rounds: `${samples} (+${warmup} warm-up)`,
        'revoked per batch': revokePool,
        'oidc-provider': '9.x on SQLite, PostgreSQL and in memory',
        'SQLite commit synced': `${commitMs.median.toFixed(2)} ms (median of ${probeCommits})`,
        'PostgreSQL commit':
          pgCommitMs === undefined
            ? 'n/a (not installed)'
            : `${pgCommitMs.median.toFixed(2)} ms (median of ${probeCommits}; PostgreSQL ${pgCommitMs.version})`,
        'Ed25519 sign / verify': `${micros(cryptoMs.sign)} / ${micros(cryptoMs.verify)}`,
      },
      rows,
      notes,
      layout: 'pivot',
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    // A fast shutdown first: the postmaster reaps its backends (killed, they would linger as zombies).
    await postgres?.stop();
    await postgres?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
