/**
 * Propagation: from the RFC 7009 revoke response arriving at the client to the first rejection of the token at
 * each of 8 guard processes, over the server's HTTP stream and over Redis (cluster mode's fan-out), side by side
 * in the same run.
 *
 * Real processes on loopback: `revokd serve` on a temporary SQLite file with `feed.redis` (its relay writes every
 * applied entry to a Redis stream), a throwaway `redis-server`, and 8 guard processes
 * (`bench/lib/propagation-guard.ts`: `createGuard` and nothing else). Access tokens (client credentials, distinct
 * jtis) are issued beforehand. Then, block by block in a rotating order (HTTP, Redis; Redis, HTTP; ...), every guard
 * starts a new guard on the block's transport (`httpFeed()`, or `[redisFeed({ client }), httpFeed()]`), checks
 * the block's tokens once, and they are revoked one at a time: a revocation is sent only once the previous one's
 * response arrived and every guard rejected it. The driver takes the instant the revoke response arrived; each
 * guard takes the instant `guard.check()` first rejected the token, checked right after each applied stream frame
 * (no polling). Both instants come from `process.hrtime`, the machine-wide monotonic clock, so they compare across
 * processes. p50, p99 and max over all (revocation, guard) pairs, per transport; ratios Redis ÷ HTTP per round.
 * Without `redis-server`, the Redis half is reported as not run, with what to install.
 *
 * Target: p99 ≤ 5 ms and max ≤ 50 ms on loopback, for each transport.
 * Reproduce: `npm run bench -- propagation` (`--quick`, `--smoke`).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  addClientViaCli,
  type ServerProcess,
  startServer,
  tempDataDir,
} from '../packages/server/test/support/process.ts';
import type { RedisServer } from '../packages/server/test/support/redis.ts';
import type { FeedName } from './lib/propagation-guard.ts';
import { isMissing, redisOrMissing } from './lib/services.ts';
import { summarize } from './lib/stats.ts';
import type { BenchOptions, BenchResult, Row, Stats } from './lib/types.ts';
import { byMode } from './lib/types.ts';

export const name = 'propagation';
export const title = 'Propagation to guard processes, HTTP stream and Redis';

const AUDIENCE = 'https://api.example.com';
const P99_TARGET_MS = 5;
const MAX_TARGET_MS = 50;
/** A revocation not rejected by every guard within this long fails the run. */
const REJECT_TIMEOUT_MS = 10_000;
const GUARD_SCRIPT = fileURLToPath(new URL('./lib/propagation-guard.ts', import.meta.url));

interface Transport {
  readonly feed: FeedName;
  readonly label: string;
}
const HTTP: Transport = { feed: 'http', label: 'HTTP stream' };
const REDIS: Transport = { feed: 'redis', label: 'Redis stream' };

type FromGuard =
  | { type: 'started' }
  | { type: 'ready'; guardId: string }
  | { type: 'clock'; at: number }
  | { type: 'watching' }
  | { type: 'feed'; feed: string | undefined; connected: Record<string, number> }
  | { type: 'rejected'; index: number; at: number }
  | { type: 'failed'; message: string };

/** Milliseconds on the machine-wide monotonic clock (CLOCK_MONOTONIC on Linux), as the guards take it. */
function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

interface GuardChild {
  readonly id: string;
  readonly child: ChildProcess;
  /** Rejection instants by token index in the current block. */
  rejectedAt: number[];
  /** Resolves with the next message of `type`. */
  next<T extends FromGuard['type']>(type: T): Promise<Extract<FromGuard, { type: T }>>;
  /** Sends `message` and resolves with the next message of `type`. */
  ask<T extends FromGuard['type']>(message: object, type: T): Promise<Extract<FromGuard, { type: T }>>;
  /** Called on every rejection message. */
  onRejected: (() => void) | undefined;
  failure: Error | undefined;
  stop(): Promise<void>;
}

function startGuard(id: string, env: Record<string, string>): GuardChild {
  const child = fork(GUARD_SCRIPT, [], {
    execArgv: ['--disable-warning=ExperimentalWarning'],
    env: { ...process.env, ...env, GUARD_ID: id },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const waiting = new Map<string, { resolve: (m: FromGuard) => void; reject: (e: Error) => void }>();
  const guard: GuardChild = {
    id,
    child,
    rejectedAt: [],
    onRejected: undefined,
    failure: undefined,
    next(type) {
      if (guard.failure) return Promise.reject(guard.failure);
      return new Promise((resolve, reject) => {
        waiting.set(type, { resolve: resolve as (m: FromGuard) => void, reject });
      });
    },
    ask(message, type) {
      const reply = guard.next(type);
      child.send(message);
      return reply;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  const fail = (error: Error) => {
    guard.failure ??= error;
    for (const w of waiting.values()) w.reject(guard.failure);
    waiting.clear();
    guard.onRejected?.();
  };
  child.on('message', (message: FromGuard) => {
    if (message.type === 'rejected') {
      guard.rejectedAt[message.index] = message.at;
      guard.onRejected?.();
      return;
    }
    if (message.type === 'failed') {
      fail(new Error(`guard ${id}: ${message.message}\n${stderr}`));
      return;
    }
    const w = waiting.get(message.type);
    waiting.delete(message.type);
    w?.resolve(message);
  });
  child.once('exit', (code, signal) => fail(new Error(`guard ${id} exited (${code ?? signal}):\n${stderr}`)));
  return guard;
}

function basic(client: { client_id: string; client_secret: string }): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface Latencies {
  /** Every (revocation, guard) pair, sorted. */
  readonly all: readonly number[];
  /** Guard by guard, sorted. */
  readonly perGuard: readonly (readonly number[])[];
}

/** Each guard's rejection instant minus `from` (an instant per revocation), in ms. */
function latencies(guards: readonly GuardChild[], from: readonly number[]): Latencies {
  const perGuard = guards.map((guard) =>
    from.map((at, i) => guard.rejectedAt[i]! - at).sort((a, b) => a - b),
  );
  return { all: perGuard.flat().sort((a, b) => a - b), perGuard };
}

/** The percentile over all pairs as the value; min – max and quartiles: the same percentile guard by guard. */
function pooled({ all, perGuard }: Latencies, p: number): Stats {
  const byGuard = summarize(perGuard.map((values) => percentile(values, p)));
  return { ...byGuard, median: percentile(all, p) };
}

/** One transport's measurements: pairs over the whole run, and the block percentiles the ratios are taken from. */
interface Measured {
  /** Per guard, every pair of every block: response → rejection, request sent → rejection. */
  readonly fromResponse: number[][];
  readonly fromRequest: number[][];
  readonly roundTripMs: number[];
  /** Per round (one block each): the pooled statistic of that block, by measure. */
  readonly blocks: Array<Record<MeasureKey, number>>;
  /** Feed connections the guards opened during the blocks, by transport. */
  readonly connected: Record<string, number>;
}

type MeasureKey = 'p99' | 'max' | 'reqP50' | 'reqP99' | 'reqMax' | 'roundTrip';

export async function run({ mode, progress }: BenchOptions): Promise<BenchResult> {
  const revocations = byMode(mode, { full: 1000, quick: 200, smoke: 20 });
  const rounds = byMode(mode, { full: 4, quick: 2, smoke: 1 });
  const perBlock = Math.ceil(revocations / rounds);
  const guardCount = byMode(mode, { full: 8, quick: 8, smoke: 2 });
  const dir = tempDataDir();
  const dbPath = join(dir, 'revokd.db');
  let server: ServerProcess | undefined;
  let redis: RedisServer | undefined;
  const guards: GuardChild[] = [];
  try {
    progress.step('starting redis-server');
    const redisOrWhy = await redisOrMissing();
    const missing = isMissing(redisOrWhy) ? redisOrWhy.missing : undefined;
    if (missing !== undefined) progress.step(`Redis variant not run: ${missing}`);
    else redis = redisOrWhy as RedisServer;
    const transports = redis === undefined ? [HTTP] : [HTTP, REDIS];

    const client = await addClientViaCli(dbPath, 'bench-rs', [
      '--grant',
      'client_credentials',
      '--audience',
      AUDIENCE,
      '--introspect',
    ]);
    server = await startServer({ dbPath, env: redis ? { REVOKD_REDIS_URL: redis.url } : {} });
    const url = server.url;
    const authorization = basic(client);
    const post = (path: string, body: Record<string, string>) =>
      fetch(`${url}${path}`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(body).toString(),
      });
    const total = revocations * transports.length;
    progress.step(`server up; starting ${guardCount} guard processes, issuing ${total} access tokens`);

    const env = {
      GUARD_ISSUER: url,
      GUARD_AUDIENCE: AUDIENCE,
      GUARD_CLIENT_ID: client.client_id,
      GUARD_CLIENT_SECRET: client.client_secret,
      ...(redis ? { GUARD_REDIS_URL: redis.url } : {}),
    };
    for (let g = 0; g < guardCount; g += 1) guards.push(startGuard(`bench-guard-${g + 1}`, env));
    const started = Promise.all(guards.map((guard) => guard.next('started')));

    const tokens: string[] = [];
    const issue = async () => {
      while (tokens.length < total) {
        const response = await post('/token', { grant_type: 'client_credentials' });
        const text = await response.text();
        if (response.status !== 200) throw new Error(`token: HTTP ${response.status} ${text}`);
        tokens.push((JSON.parse(text) as { access_token: string }).access_token);
      }
    };
    await Promise.all(Array.from({ length: 4 }, issue));
    tokens.length = total;
    if (new Set(tokens).size !== tokens.length) throw new Error('issued tokens are not distinct');
    await started;

    // Clock check: each guard's instant must fall between the driver's before and after.
    for (const guard of guards) {
      const before = monotonicMs();
      const { at } = await guard.ask({ type: 'clock' }, 'clock');
      const after = monotonicMs();
      if (!(before <= at && at <= after)) {
        throw new Error(`guard ${guard.id}: clocks not comparable (${before} ≤ ${at} ≤ ${after} fails)`);
      }
    }

    const measured = new Map<Transport, Measured>(
      transports.map((t) => [
        t,
        {
          fromResponse: guards.map(() => []),
          fromRequest: guards.map(() => []),
          roundTripMs: [],
          blocks: [],
          connected: {},
        },
      ]),
    );
    /** Tokens not yet revoked, per transport (each transport revokes its own). */
    const queues = new Map(
      transports.map((t, i) => [t, tokens.slice(i * revocations, (i + 1) * revocations)]),
    );

    const runBlock = async (transport: Transport, block: readonly string[], label: string) => {
      await Promise.all(guards.map((guard) => guard.ask({ type: 'follow', feed: transport.feed }, 'ready')));
      for (const guard of guards) guard.rejectedAt = [];
      await Promise.all(guards.map((guard) => guard.ask({ type: 'watch', tokens: block }, 'watching')));
      progress.step(`${label}: ${guards.length} guards on the ${transport.label}, revoking ${block.length}`);
      const sentAt: number[] = [];
      const responseAt: number[] = [];
      const roundTripMs: number[] = [];
      for (let i = 0; i < block.length; i += 1) {
        const allRejected = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () =>
              reject(
                new Error(
                  `${transport.label}, revocation ${i}: not rejected by every guard within ${REJECT_TIMEOUT_MS} ms`,
                ),
              ),
            REJECT_TIMEOUT_MS,
          );
          const settle = () => {
            const failed = guards.find((guard) => guard.failure);
            if (failed) {
              clearTimeout(timer);
              reject(failed.failure);
            } else if (guards.every((guard) => guard.rejectedAt[i] !== undefined)) {
              clearTimeout(timer);
              resolve();
            }
          };
          for (const guard of guards) guard.onRejected = settle;
          settle();
        });
        allRejected.catch(() => {});
        const sent = monotonicMs();
        const response = await post('/revoke', { token: block[i]!, token_type_hint: 'access_token' });
        const arrived = monotonicMs();
        await response.arrayBuffer();
        if (response.status !== 200) throw new Error(`revoke ${i}: HTTP ${response.status}`);
        sentAt.push(sent);
        responseAt.push(arrived);
        roundTripMs.push(arrived - sent);
        await allRejected;
      }
      // Every guard followed the block's transport throughout: a fallback to HTTP would measure the wrong one.
      const m = measured.get(transport)!;
      for (const guard of guards) {
        const { feed, connected } = await guard.ask({ type: 'feed' }, 'feed');
        const others = Object.keys(connected).filter((name) => name !== transport.feed);
        if (feed !== transport.feed || others.length > 0) {
          throw new Error(
            `guard ${guard.id} left the ${transport.label} during the block: feed ${feed}, connections ${JSON.stringify(connected)}`,
          );
        }
        for (const [feedName, count] of Object.entries(connected)) {
          m.connected[feedName] = (m.connected[feedName] ?? 0) + count;
        }
      }
      const fromResponse = latencies(guards, responseAt);
      const fromRequest = latencies(guards, sentAt);
      for (let g = 0; g < guards.length; g += 1) {
        m.fromResponse[g]!.push(...fromResponse.perGuard[g]!);
        m.fromRequest[g]!.push(...fromRequest.perGuard[g]!);
      }
      m.roundTripMs.push(...roundTripMs);
      m.blocks.push({
        p99: percentile(fromResponse.all, 99),
        max: percentile(fromResponse.all, 100),
        reqP50: percentile(fromRequest.all, 50),
        reqP99: percentile(fromRequest.all, 99),
        reqMax: percentile(fromRequest.all, 100),
        roundTrip: summarize(roundTripMs).median,
      });
    };

    for (let round = 0; round < rounds; round += 1) {
      for (let i = 0; i < transports.length; i += 1) {
        const transport = transports[(i + round) % transports.length]!;
        const block = queues.get(transport)!.splice(0, perBlock);
        if (block.length === 0) continue;
        await runBlock(transport, block, `round ${round + 1}/${rounds}`);
      }
    }

    const sorted = (perGuard: number[][]): Latencies => {
      const byGuard = perGuard.map((values) => [...values].sort((a, b) => a - b));
      return { perGuard: byGuard, all: byGuard.flat().sort((a, b) => a - b) };
    };
    const measures: ReadonlyArray<{
      key: MeasureKey;
      label: string;
      value: (m: Measured) => Stats;
      target?: (value: Stats) => { text: string; met: boolean };
    }> = [
      {
        key: 'p99',
        label: 'revoke response → first rejection, p99',
        value: (m) => pooled(sorted(m.fromResponse), 99),
        target: (v) => ({ text: `≤ ${P99_TARGET_MS} ms`, met: v.median <= P99_TARGET_MS }),
      },
      {
        key: 'max',
        label: 'revoke response → first rejection, max',
        value: (m) => pooled(sorted(m.fromResponse), 100),
        target: (v) => ({ text: `≤ ${MAX_TARGET_MS} ms`, met: v.median <= MAX_TARGET_MS }),
      },
      {
        key: 'reqP50',
        label: 'revoke request sent → first rejection, p50',
        value: (m) => pooled(sorted(m.fromRequest), 50),
      },
      {
        key: 'reqP99',
        label: 'revoke request sent → first rejection, p99',
        value: (m) => pooled(sorted(m.fromRequest), 99),
      },
      {
        key: 'reqMax',
        label: 'revoke request sent → first rejection, max',
        value: (m) => pooled(sorted(m.fromRequest), 100),
      },
      { key: 'roundTrip', label: 'revoke round trip at the client', value: (m) => summarize(m.roundTripMs) },
    ];
    const rows: Row[] = [];
    for (const measure of measures) {
      for (const transport of [HTTP, REDIS]) {
        const m = measured.get(transport);
        if (m === undefined) {
          rows.push({
            group: measure.label,
            subject: transport.label,
            unit: 'ms',
            value: undefined,
            note: 'not run: redis-server is not installed (see the notes)',
          });
          continue;
        }
        const value = measure.value(m);
        const http = measured.get(HTTP)!;
        const ratio =
          transport === HTTP || m.blocks.length !== http.blocks.length
            ? undefined
            : summarize(m.blocks.map((block, r) => block[measure.key] / http.blocks[r]![measure.key]));
        rows.push({
          group: measure.label,
          subject: transport.label,
          unit: 'ms',
          value,
          ...(ratio ? { ratio: { to: HTTP.label, value: ratio } } : {}),
          ...(measure.target ? { target: measure.target(value) } : {}),
        });
      }
    }

    const fmt = (ms: number) => `${ms.toFixed(2)} ms`;
    const notes: string[] = [];
    for (const [transport, m] of measured) {
      const { all } = sorted(m.fromResponse);
      const at = (p: number) => fmt(percentile(all, p));
      const beforeResponse = all.filter((v) => v <= 0).length;
      notes.push(
        `${transport.label}, revoke response → first rejection over all ${all.length} (revocation, guard) pairs: ` +
          `p50 ${at(50)}, p90 ${at(90)}, p99 ${at(99)}, max ${at(100)} (min ${fmt(all[0]!)}); ` +
          `${beforeResponse} pairs (${((100 * beforeResponse) / all.length).toFixed(1)} %) were rejected before ` +
          `the response reached the client. Feed connections the guards opened, by transport: ` +
          `${JSON.stringify(m.connected)} (${guards.length} guards × ${m.blocks.length} blocks).`,
      );
    }
    notes.push(
      'A negative value: the guard rejected the token before the response reached the client. The server writes ' +
        "the entry to its guards' streams (and hands it to its Redis relay) as soon as its own index applies it, " +
        'before it answers the revoke. (The response p50 is in these notes, not in the table, because it is often ≤ 0.)',
      'Latency rows: the value is the percentile over all pairs; min – max is the same percentile guard by ' +
        'guard. "Request sent" rows include the whole revoke (commit, fsync) and are an upper bound of the ' +
        'response rows. The round-trip row is a plain median over the revocations (min – max over them). Ratios: ' +
        `Redis ÷ HTTP of the same percentile, each round's Redis block to its HTTP block (${perBlock} revocations ` +
        'each), median and min – max over the rounds.',
      redis === undefined
        ? 'The server runs on SQLite without `feed.redis` (Redis is not installed); the guards follow its HTTP ' +
            'stream (`httpFeed()`), a new guard in every guard process at the start of each block.'
        : 'One server for both transports: SQLite store with `feed.redis` configured, so its relay writes every ' +
            'applied entry to the Redis stream in both kinds of block; in HTTP blocks it also writes each entry to ' +
            "the guards' event streams, the fan-out that Redis takes over in Redis blocks (hence the shorter revoke " +
            'round trips there). Each block starts a new guard in every guard process (`follow`), on `httpFeed()` ' +
            'or on `[redisFeed({ client }), httpFeed()]` (an ioredis client); with either, each guard posts its ' +
            'receipts to the server over HTTP. A guard that fell back to HTTP during a Redis block fails the run.',
      'Each guard checks the next watched token with `guard.check()` right after applying each feed frame ' +
        '(`RevocationIndex.prototype.apply` wrapped in the bench guard process), answered from its verified-token ' +
        "cache; instants from `process.hrtime` (machine-wide monotonic clock), checked against the driver's " +
        "before the run. The server, Redis, the guards and the driver share the machine's cores.",
    );
    if (missing !== undefined) notes.push(`Redis stream: not run, ${missing}.`);
    return {
      name,
      title,
      params: {
        guards: guards.length,
        'revocations per transport': revocations,
        rounds: `${rounds}, one block of ${perBlock} revocations per transport each, in a rotating order`,
        issued: 'one at a time: the next revoke after the previous response and its rejection by every guard',
        database: 'a temporary SQLite file',
        redis: redis === undefined ? 'not installed' : 'redis-server on loopback, no persistence',
      },
      rows,
      notes,
      layout: 'pivot',
    };
  } finally {
    await Promise.all(guards.map((guard) => guard.stop()));
    await server?.kill9();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
