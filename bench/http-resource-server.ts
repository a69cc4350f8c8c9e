/**
 * HTTP resource server: a Fastify app in a child process (pinned to CPU 1 with `taskset -c 1` when available)
 * answers `GET` requests carrying `Authorization: Bearer <access token>`, driven by autocannon in a second child
 * process (pinned to CPU 0 when the server is pinned). Side by side, round by round, on the same server process:
 *
 * - no auth: the route reads nothing (the requests still carry the warm tokens' headers);
 * - guard, warm: `fastifyGuard` of a guard following a real revokd server; 100 tokens repeat;
 * - guard, cold: another such guard; every request carries a token it has not seen for ≥ 3× its verified-token
 *   cache (a pool cycled per route), so every check verifies a signature;
 * - jose.jwtVerify: verification only, with an imported key, checking `iss`, `aud` and `typ` (cold tokens);
 * - verify + Redis: jose, then `EXISTS revoked:<jti>` per request in a throwaway `redis-server` (the jwt-redis
 *   pattern, ioredis client), failing closed (503) when Redis does not answer; reported as not run, with what to
 *   install, when `redis-server` is missing;
 * - verify + introspection: jose, then an RFC 7662 `POST /introspect` per request to the revokd server.
 *
 * The revokd server (real runtime, SQLite in a temporary folder, loopback port) runs in this process and signs
 * nothing: the tokens are minted up front with its active key (`node:crypto`). Then each dependency is stopped
 * halfway through a short run (the revokd server, cut behind a TCP proxy; Redis, killed with SIGKILL) to show
 * what each variant answers without it.
 *
 * Targets (issue 4): guard warm ≥ 0.8 × no auth; guard cold ≥ 1.0 × jose.jwtVerify.
 * Reproduce: `npm run bench -- http-resource-server` (`--quick`, `--smoke`).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import { decodeJwt, importJWK, type JWK, jwtVerify } from 'jose';
import { fastifyGuard } from '../packages/guard/src/adapters/fastify.ts';
import { createGuard, type Guard } from '../packages/guard/src/guard.ts';
import { parseConfig } from '../packages/server/src/config/load.ts';
import { GRANT_TYPES } from '../packages/server/src/config/schema.ts';
import { buildApp } from '../packages/server/src/http/app.ts';
import { createRuntime } from '../packages/server/src/runtime.ts';
import { CuttableProxy } from '../packages/server/test/support/cuttable-proxy.ts';
import type { RedisServer } from '../packages/server/test/support/redis.ts';
import { judge } from './lib/report.ts';
import { isMissing, redisOrMissing } from './lib/services.ts';
import { summarize } from './lib/stats.ts';
import { AUDIENCE, ISSUER, mintTokens, type SigningKey } from './lib/tokens.ts';
import type { BenchOptions, BenchResult, Row } from './lib/types.ts';
import { byMode } from './lib/types.ts';

export const name = 'http-resource-server';
export const title = 'HTTP resource server';

const SELF = fileURLToPath(import.meta.url);
const CONNECTIONS = 8;
const WARM_TOKENS = 100;
/** The guard's default `verifiedCacheSize`: the cold pool is larger, so a token is evicted before it returns. */
const VERIFIED_CACHE = 10_000;
/** Redis keys of the verify + Redis variant: one per revoked token. */
const REVOKED_PREFIX = 'revoked:';

type TokenKind = 'warm' | 'cold';
interface Variant {
  readonly subject: string;
  readonly path: string;
  readonly tokens: TokenKind;
}

const NO_AUTH: Variant = { subject: 'no auth', path: '/none', tokens: 'warm' };
const WARM: Variant = { subject: 'guard, warm', path: '/guard/warm', tokens: 'warm' };
const COLD: Variant = { subject: 'guard, cold', path: '/guard/cold', tokens: 'cold' };
const JOSE: Variant = { subject: 'jose.jwtVerify', path: '/jose', tokens: 'cold' };
const REDIS: Variant = { subject: 'verify + Redis', path: '/redis', tokens: 'cold' };
const INTROSPECT: Variant = { subject: 'verify + introspection', path: '/introspect', tokens: 'cold' };

/** What the load generator reports for one run. */
interface LoadResult {
  readonly seconds: number;
  readonly responses: number;
  readonly ok: number;
  readonly errors: number;
  readonly status: Record<string, number>;
  readonly p50: number;
  readonly p99: number;
  /** With a cut: the same tallies before and after it. */
  readonly before?: Tally;
  readonly after?: Tally;
}
interface Tally {
  ok: number;
  errors: number;
  status: Record<string, number>;
}
interface RunCommand {
  readonly type: 'run';
  readonly url: string;
  readonly tokens: TokenKind;
  readonly seconds: number;
  readonly cutAtMs?: number;
}
interface ServerInit {
  readonly type: 'init';
  readonly serverUrl: string;
  readonly proxyUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly jwk: JWK;
  readonly redisUrl: string | undefined;
}

export async function run({ mode, progress }: BenchOptions): Promise<BenchResult> {
  const seconds = byMode(mode, { full: 1.5, quick: 0.8, smoke: 0.1 });
  const samples = byMode(mode, { full: 5, quick: 3, smoke: 1 });
  const warmup = byMode(mode, { full: 1, quick: 1, smoke: 0 });
  const outageSeconds = byMode(mode, { full: 3, quick: 1.6, smoke: 0.2 });
  const coldPool = byMode(mode, { full: 4 * VERIFIED_CACHE, quick: 3 * VERIFIED_CACHE, smoke: 200 });
  const pinned = canPin();

  const dir = mkdtempSync(join(tmpdir(), 'revokd-bench-http-'));
  const children: ChildProcess[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    progress.step('starting a revokd server (in process, loopback)');
    const config = parseConfig({
      issuer: ISSUER,
      store: { kind: 'sqlite', path: join(dir, 'revokd.db') },
      rateLimit: { enabled: false },
      log: { level: 'silent' },
    });
    const runtime = await createRuntime(config, { follow: true });
    cleanups.push(() => runtime.close());
    const app = buildApp(runtime, { logger: false });
    cleanups.push(() => app.close());
    await app.listen({ port: 0, host: '127.0.0.1' });
    const serverUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const proxy = new CuttableProxy((app.server.address() as AddressInfo).port);
    cleanups.push(() => proxy.cut());
    const proxyUrl = await proxy.start();
    const clientId = 'bench-api';
    const { secret: clientSecret } = await runtime.clients.register({
      id: clientId,
      grants: [GRANT_TYPES.clientCredentials],
      audiences: [AUDIENCE],
      scopes: ['read'],
      accessTokenTtlSeconds: undefined,
      backchannelLogoutUri: undefined,
      canIntrospect: true,
      sessionClaims: [],
    });

    progress.step(`minting ${WARM_TOKENS} warm + ${coldPool} cold EdDSA tokens with the server's key`);
    const key = serverKey(runtime.keyring.list());
    const tokensFile = join(dir, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify(mintTokens(key, WARM_TOKENS + coldPool)));

    progress.step('starting redis-server (verify + Redis)');
    const redisOrWhy = await redisOrMissing();
    let redis: RedisServer | undefined;
    const redisMissing = isMissing(redisOrWhy) ? `not run: ${redisOrWhy.missing}` : undefined;
    if (redisMissing !== undefined) progress.step(`verify + Redis ${redisMissing}`);
    else {
      redis = redisOrWhy as RedisServer;
      const stopRedis = redis;
      cleanups.push(() => stopRedis.stop());
    }

    progress.step(`starting the resource server (${pinned ? 'taskset -c 1' : 'unpinned'}) and autocannon`);
    const server = spawnRole('server', pinned ? '1' : undefined);
    children.push(server);
    const load = spawnRole('load', pinned ? '0' : undefined);
    children.push(load);
    const init: ServerInit = {
      type: 'init',
      serverUrl,
      proxyUrl,
      clientId,
      clientSecret,
      jwk: key.jwk,
      redisUrl: redis?.url,
    };
    const [{ port }] = await Promise.all([
      ask<{ port: number }>(server, init),
      ask(load, { type: 'init', file: tokensFile, warm: WARM_TOKENS }),
    ]);
    const base = `http://127.0.0.1:${port}`;
    const serverCpu = () => ask<{ micros: number }>(server, { type: 'cpu' });
    /** One load run, with the server process's CPU time during it (µs, user + system). */
    const runLoad = async (variant: Variant, runSeconds: number, cutAtMs?: number) => {
      const cpuBefore = await serverCpu();
      const result = await ask<LoadResult>(load, {
        type: 'run',
        url: `${base}${variant.path}`,
        tokens: variant.tokens,
        seconds: runSeconds,
        cutAtMs,
      } satisfies RunCommand);
      return { ...result, serverCpuMicros: (await serverCpu()).micros - cpuBefore.micros };
    };

    if (redis !== undefined) {
      progress.step('checking that verify + Redis rejects a token revoked in Redis');
      await checkRedisLookup(base, redis.url, key, readFileSync(tokensFile, 'utf8'));
    }

    const variants = [NO_AUTH, WARM, COLD, JOSE, ...(redis === undefined ? [] : [REDIS]), INTROSPECT];
    const rates = new Map<string, number[]>(variants.map((v) => [v.subject, []]));
    const p50s = new Map<string, number[]>(variants.map((v) => [v.subject, []]));
    const p99s = new Map<string, number[]>(variants.map((v) => [v.subject, []]));
    const ratios = new Map<string, number[]>(variants.map((v) => [v.subject, []]));
    /** Server CPU µs per request, and the share of the run's wall time the server was busy. */
    const cpuPerRequest = new Map<string, number[]>(variants.map((v) => [v.subject, []]));
    const busy = new Map<string, number[]>(variants.map((v) => [v.subject, []]));
    const capacityRatios = new Map<string, number[]>(variants.map((v) => [v.subject, []]));
    /** Per round: verify + Redis ÷ jose.jwtVerify, and guard cold ÷ verify + Redis (req/s). */
    const redisToJose: number[] = [];
    const coldToRedis: number[] = [];
    const total = warmup + samples;
    for (let round = 0; round < total; round++) {
      const inRound = new Map<string, LoadResult & { serverCpuMicros: number }>();
      for (let i = 0; i < variants.length; i++) {
        const variant = variants[(i + round) % variants.length]!;
        const result = await runLoad(variant, seconds);
        if (result.ok !== result.responses || result.errors > 0 || result.ok === 0) {
          throw new Error(
            `${variant.subject}: ${result.ok} of ${result.responses} answers were 200 (${JSON.stringify(result.status)}), ${result.errors} errors`,
          );
        }
        inRound.set(variant.subject, result);
      }
      progress.step(`round ${round + 1}/${total}`);
      if (round < warmup) continue;
      const rate = (subject: string) => inRound.get(subject)!.ok / inRound.get(subject)!.seconds;
      if (inRound.has(REDIS.subject)) {
        redisToJose.push(rate(REDIS.subject) / rate(JOSE.subject));
        coldToRedis.push(rate(COLD.subject) / rate(REDIS.subject));
      }
      for (const [subject, result] of inRound) {
        rates.get(subject)!.push(rate(subject));
        p50s.get(subject)!.push(result.p50);
        p99s.get(subject)!.push(result.p99);
        ratios
          .get(subject)!
          .push(rate(subject) / rate(subject === COLD.subject ? JOSE.subject : NO_AUTH.subject));
        cpuPerRequest.get(subject)!.push(result.serverCpuMicros / result.ok);
        busy.get(subject)!.push(result.serverCpuMicros / 1e6 / result.seconds);
        const cost = (s: string) => inRound.get(s)!.serverCpuMicros / inRound.get(s)!.ok;
        capacityRatios
          .get(subject)!
          .push(cost(subject === COLD.subject ? JOSE.subject : NO_AUTH.subject) / cost(subject));
      }
    }

    progress.step('stopping each dependency halfway through a run');
    const outages: string[] = [];
    const outage = async (variant: Variant, what: string, stop: () => Promise<void>) => {
      const cutAtMs = (outageSeconds * 1000) / 2;
      const timer = new Promise<void>((resolve) => setTimeout(resolve, cutAtMs)).then(stop);
      const [result] = await Promise.all([runLoad(variant, outageSeconds, cutAtMs), timer]);
      outages.push(
        `${variant.subject} (${what} stopped): before ${describeTally(result.before!)}; after ${describeTally(result.after!)}.`,
      );
    };
    await outage({ ...WARM, path: '/outage/guard' }, 'revokd server', () => proxy.cut());
    await proxy.start();
    await outage({ ...INTROSPECT, path: '/outage/introspect' }, 'revokd server', () => proxy.cut());
    await proxy.start();
    if (redis !== undefined) {
      const stopped = redis;
      await outage(REDIS, 'Redis', () => stopped.kill());
    } else {
      outages.push(`${REDIS.subject}: ${redisMissing}.`);
    }

    const group = `GET, ${CONNECTIONS} connections · req/s`;
    const rows: Row[] = [];
    for (const variant of [NO_AUTH, WARM, COLD, JOSE, REDIS, INTROSPECT]) {
      const values = rates.get(variant.subject);
      if (values === undefined) {
        rows.push({ group, subject: variant.subject, unit: 'ops/s', value: undefined, note: redisMissing! });
        continue;
      }
      const ratio = summarize(ratios.get(variant.subject)!);
      const to = variant === COLD ? JOSE.subject : NO_AUTH.subject;
      rows.push({
        group,
        subject: variant.subject,
        unit: 'ops/s',
        value: summarize(values),
        ...(variant === NO_AUTH ? {} : { ratio: { to, value: ratio } }),
        ...(variant === WARM ? { target: { text: '≥ 0.8× no auth', met: judge(ratio, '>=', 0.8) } } : {}),
        ...(variant === COLD
          ? { target: { text: '≥ 1.0× jose.jwtVerify', met: judge(ratio, '>=', 1.0) } }
          : {}),
      });
    }
    const capacity = 'server capacity, 1 / CPU time per request';
    for (const variant of variants) {
      const to = variant === COLD ? JOSE.subject : NO_AUTH.subject;
      rows.push({
        group: capacity,
        subject: variant.subject,
        unit: 'ops/s',
        value: summarize(cpuPerRequest.get(variant.subject)!.map((micros) => 1e6 / micros)),
        ...(variant === NO_AUTH
          ? {}
          : { ratio: { to, value: summarize(capacityRatios.get(variant.subject)!) } }),
      });
    }
    for (const [label, map] of [
      ['p50 latency', p50s],
      ['p99 latency', p99s],
    ] as const) {
      for (const variant of variants) {
        rows.push({
          group: label,
          subject: variant.subject,
          unit: 'ms',
          value: summarize(map.get(variant.subject)!),
        });
      }
    }

    const cpu = variants
      .map((v) => {
        const micros = summarize(cpuPerRequest.get(v.subject)!).median;
        const share = summarize(busy.get(v.subject)!).median;
        return `${v.subject} ${micros.toFixed(0)} µs (busy ${(100 * share).toFixed(0)} %)`;
      })
      .join(', ');
    return {
      name,
      title,
      params: {
        'server process': pinned
          ? 'Fastify 5, pinned to CPU 1 (taskset -c 1)'
          : 'Fastify 5, unpinned (taskset not available or < 2 cores)',
        'load generator': `autocannon, ${CONNECTIONS} connections, ${pinned ? 'pinned to CPU 0' : 'unpinned'}`,
        'run per variant and round': `${seconds} s`,
        rounds: `${samples} (+${warmup} warm-up)`,
        'cold token pool': `${coldPool} EdDSA tokens per route (the guard caches ${VERIFIED_CACHE})`,
      },
      rows,
      notes: [
        `Resource server CPU time per request (user + system, medians; in brackets the share of the run the ` +
          `server process was busy, 100 % = one core saturated): ${cpu}. Well below 100 % busy, the load ` +
          'generator (one core) or other work on the server core set the pace, not the server: the ' +
          '"server capacity" rows (what one core would serve at that CPU cost) then compare the variants ' +
          'better than req/s. The targets are judged on req/s, as issue 4 states them. The guard verifies with synchronous `crypto.verify`; jose awaits ' +
          'WebCrypto (the libuv thread pool and back) per token (its thread pool is pinned to the same core when the server is).',
        redisMissing !== undefined
          ? `verify + Redis: ${redisMissing}.`
          : 'verify + Redis: jose.jwtVerify, then `EXISTS revoked:<jti>` in a local redis-server (no persistence, ' +
            'unpinned: it shares the cores with the rest; one revoked key in it, a lookup costs the same at any size) ' +
            "through one ioredis connection, the concurrent requests' commands in flight together; any Redis error or a command unanswered for 1 s answers 503 (fails closed: a " +
            'revocation check that cannot run does not let the token through). Checked before the run: a token ' +
            `whose jti is in Redis gets 401. Within each round: verify + Redis ÷ jose.jwtVerify ${ratioText(redisToJose)}, ` +
            `guard cold ÷ verify + Redis ${ratioText(coldToRedis)} (req/s, median and min – max over the rounds).`,
        'verify + introspection waits for the revokd server in the parent process (its introspection verifies the ' +
          'token with jose and writes an audit event per call, group-committed to SQLite) and shares CPU 0 with the ' +
          'load generator: its rate is bounded by that round trip, not by the resource server.',
        `Dependency stopped halfway through a ${outageSeconds} s run (answers by status; "errors" are requests ` +
          'that got no answer):',
        ...outages.map((o) => `  ${o}`),
        'The guard keeps answering from its index while the revokd server is down; it would turn to 503 once ' +
          'the index is older than `maxStalenessMs` (30 s by default, under the `reject` stale policy).',
      ],
    };
  } finally {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const cleanup of cleanups.reverse()) await cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `0.91× (0.85× – 0.97×)`: median and min – max of per-round ratios. */
function ratioText(ratios: readonly number[]): string {
  if (ratios.length === 0) return 'n/a';
  const { median, min, max } = summarize(ratios);
  return `${median.toFixed(2)}× (${min.toFixed(2)}× – ${max.toFixed(2)}×)`;
}

function describeTally(t: Tally): string {
  const answered = t.ok + Object.entries(t.status).reduce((n, [code, c]) => n + (code === '200' ? 0 : c), 0);
  const failed = answered + t.errors - t.ok;
  const rate = answered + t.errors === 0 ? 0 : (100 * failed) / (answered + t.errors);
  const codes = Object.entries(t.status)
    .map(([code, count]) => `${count.toLocaleString('en-US')} × ${code}`)
    .join(', ');
  return `${codes || 'no answers'}, ${t.errors.toLocaleString('en-US')} errors (${rate.toFixed(1)} % failed)`;
}

/** The revokd server's active signing key, as the benchmarks' token minter takes it. */
function serverKey(
  records: ReadonlyArray<{
    kid: string;
    alg: string;
    state: string;
    privateJwk: unknown;
    publicJwk: unknown;
  }>,
): SigningKey {
  const record = records.find((r) => r.state === 'active');
  if (record === undefined || record.alg !== 'EdDSA') throw new Error('expected an active EdDSA key');
  const privateKey = createPrivateKey({ key: record.privateJwk as JWK & { kty: string }, format: 'jwk' });
  return {
    alg: 'EdDSA',
    kid: record.kid,
    signingKey: privateKey,
    verificationKey: createPublicKey(privateKey),
    jwk: record.publicJwk as JWK,
    fastJwtKey: '',
  };
}

function canPin(): boolean {
  if (availableParallelism() < 2) return false;
  return spawnSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' }).status === 0;
}

/**
 * Proves the verify + Redis route looks its token up: a token whose jti is marked revoked in Redis is refused
 * (401), another one passes (200). Run once before the measurements.
 */
async function checkRedisLookup(
  base: string,
  redisUrl: string,
  key: SigningKey,
  tokensJson: string,
): Promise<void> {
  const [revoked] = mintTokens(key, 1);
  const live = (JSON.parse(tokensJson) as string[])[0]!;
  const client = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    await client.set(`${REVOKED_PREFIX}${String(decodeJwt(revoked!).jti)}`, '1', 'EX', 3600);
  } finally {
    client.disconnect();
  }
  const status = async (token: string) =>
    (await fetch(`${base}${REDIS.path}`, { headers: { authorization: `Bearer ${token}` } })).status;
  const [refused, accepted] = [await status(revoked!), await status(live)];
  if (refused !== 401 || accepted !== 200) {
    throw new Error(
      `verify + Redis: a revoked token got ${refused} (expected 401), a live one ${accepted} (expected 200)`,
    );
  }
}

/** This file in a child process, in `role`, pinned to `cpu` with taskset when given. Talks over IPC. */
function spawnRole(role: 'server' | 'load', cpu: string | undefined): ChildProcess {
  const args = ['--disable-warning=ExperimentalWarning', SELF, role];
  const [command, argv] =
    cpu === undefined ? [process.execPath, args] : ['taskset', ['-c', cpu, process.execPath, ...args]];
  return spawn(command, argv, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
}

/** Sends `message` to `child` and resolves with its next message (one request in flight per child). */
function ask<T = unknown>(child: ChildProcess, message: object): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (reply: unknown) => {
      child.off('exit', onExit);
      const failure = (reply as { error?: string }).error;
      if (failure !== undefined) reject(new Error(failure));
      else resolve(reply as T);
    };
    const onExit = (code: number | null) => {
      child.off('message', onMessage);
      reject(new Error(`child process exited (${code})`));
    };
    child.once('message', onMessage);
    child.once('exit', onExit);
    child.send(message);
  });
}

// ---- child: the resource server ------------------------------------------------------------------------------

async function serverRole(init: ServerInit): Promise<number> {
  const { default: Fastify } = await import('fastify');
  const guardFor = (serverUrl: string): Guard =>
    createGuard({
      issuer: ISSUER,
      audience: AUDIENCE,
      clientId: init.clientId,
      clientSecret: init.clientSecret,
      serverUrl,
      jwksUri: `${init.serverUrl}/jwks.json`,
      readyTimeoutMs: 10_000,
      reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    });
  const warm = guardFor(init.serverUrl);
  const cold = guardFor(init.serverUrl);
  const viaProxy = guardFor(init.proxyUrl);
  await Promise.all([warm.ready(), cold.ready(), viaProxy.ready()]);
  const key = await importJWK(init.jwk, 'EdDSA');
  const verify = async (request: FastifyRequest) => {
    const header = request.headers.authorization;
    if (header === undefined || !header.startsWith('Bearer ')) return undefined;
    try {
      return (await jwtVerify(header.slice(7), key, { issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt' }))
        .payload;
    } catch {
      return undefined;
    }
  };
  const unauthorized = (reply: FastifyReply) => reply.code(401).send({ error: 'invalid_token' });
  const unavailable = (reply: FastifyReply) => reply.code(503).send({ error: 'temporarily_unavailable' });
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(init.clientId)}:${encodeURIComponent(init.clientSecret)}`).toString('base64')}`;
  const introspect = (base: string) => async (request: FastifyRequest, reply: FastifyReply) => {
    const claims = await verify(request);
    if (claims === undefined) return unauthorized(reply);
    let active: boolean;
    try {
      const response = await fetch(`${base}/introspect`, {
        method: 'POST',
        headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
        body: `token=${encodeURIComponent(request.headers.authorization!.slice(7))}&token_type_hint=access_token`,
        signal: AbortSignal.timeout(2000),
      });
      if (response.status !== 200) return unavailable(reply);
      active = ((await response.json()) as { active?: unknown }).active === true;
    } catch {
      return unavailable(reply);
    }
    return active ? { sub: claims.sub } : unauthorized(reply);
  };

  const app = Fastify({ logger: false });
  app.get('/none', async () => ({ sub: null }));
  app.get('/guard/warm', { onRequest: fastifyGuard(warm) }, async (request) => ({
    sub: request.auth!.claims.sub,
  }));
  app.get('/guard/cold', { onRequest: fastifyGuard(cold) }, async (request) => ({
    sub: request.auth!.claims.sub,
  }));
  app.get('/outage/guard', { onRequest: fastifyGuard(viaProxy) }, async (request) => ({
    sub: request.auth!.claims.sub,
  }));
  app.get('/jose', async (request, reply) => {
    const claims = await verify(request);
    return claims === undefined ? unauthorized(reply) : { sub: claims.sub };
  });
  app.get('/introspect', introspect(init.serverUrl));
  app.get('/outage/introspect', introspect(init.proxyUrl));
  if (init.redisUrl !== undefined) {
    // The jwt-redis pattern as usually deployed: fail closed. No offline queue and no retries, so a request fails at
    // once while Redis is unreachable, and a command unanswered for 1 s fails too (a frozen Redis).
    const client = new Redis(init.redisUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: 1000,
    });
    client.on('error', () => {});
    await once(client, 'ready', { signal: AbortSignal.timeout(5000) });
    app.get(REDIS.path, async (request, reply) => {
      const claims = await verify(request);
      if (claims === undefined) return unauthorized(reply);
      try {
        if ((await client.exists(`${REVOKED_PREFIX}${String(claims.jti)}`)) !== 0) return unauthorized(reply);
      } catch {
        return unavailable(reply);
      }
      return { sub: claims.sub };
    });
  }
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as AddressInfo).port;
}

// ---- child: the load generator --------------------------------------------------------------------------------

interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, status: number, bytes: number, ms: number) => void): void;
  on(event: 'reqError', listener: (error: unknown) => void): void;
}
type Autocannon = (
  options: object,
  done: (error: Error | null, result: unknown) => void,
) => AutocannonInstance;

async function loadRole(): Promise<(message: { type: string }) => Promise<unknown>> {
  const { default: autocannon } = (await import('autocannon' as string)) as { default: Autocannon };
  let warm: string[] = [];
  let cold: string[] = [];
  /** Per route: where its walk through the cold pool stands. */
  const cursors = new Map<string, number>();
  return async (message) => {
    if (message.type === 'init') {
      const { file, warm: count } = message as unknown as { file: string; warm: number };
      const all = JSON.parse(readFileSync(file, 'utf8')) as string[];
      warm = all.slice(0, count).map((t) => `Bearer ${t}`);
      cold = all.slice(count).map((t) => `Bearer ${t}`);
      return { ok: true };
    }
    const command = message as RunCommand;
    const pool = command.tokens === 'warm' ? warm : cold;
    let next = cursors.get(command.url) ?? 0;
    const latencies: number[] = [];
    const tally = (): Tally => ({ ok: 0, errors: 0, status: {} });
    const all = tally();
    const before = tally();
    const after = tally();
    const started = performance.now();
    const phase = () =>
      command.cutAtMs === undefined
        ? undefined
        : performance.now() - started < command.cutAtMs
          ? before
          : after;
    return new Promise<LoadResult>((resolve, reject) => {
      const instance = autocannon(
        {
          url: command.url,
          connections: CONNECTIONS,
          duration: command.seconds,
          // autocannon checks its stop flag on this tick (default 1 s, which would round every run up to seconds).
          sampleInt: 50,
          timeout: 2,
          requests: [
            {
              method: 'GET',
              setupRequest: (request: object) => {
                const authorization = pool[next++ % pool.length]!;
                return { ...request, headers: { authorization } };
              },
            },
          ],
        },
        (error) => {
          if (error) return reject(error);
          cursors.set(command.url, next % pool.length);
          const sorted = Float64Array.from(latencies).sort();
          const at = (q: number) =>
            sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
          resolve({
            seconds: (performance.now() - started) / 1000,
            responses: latencies.length,
            ok: all.ok,
            errors: all.errors,
            status: all.status,
            p50: at(0.5),
            p99: at(0.99),
            ...(command.cutAtMs === undefined ? {} : { before, after }),
          });
        },
      );
      instance.on('response', (_client, status, _bytes, ms) => {
        latencies.push(ms);
        for (const t of [all, phase()]) {
          if (t === undefined) continue;
          if (status === 200) t.ok++;
          t.status[status] = (t.status[status] ?? 0) + 1;
        }
      });
      instance.on('reqError', () => {
        all.errors++;
        const t = phase();
        if (t !== undefined) t.errors++;
      });
    });
  };
}

// ---- child entry point ----------------------------------------------------------------------------------------

if (process.argv[1] === SELF && process.send !== undefined) {
  const role = process.argv[2];
  // The parent is gone (or closed the channel): leave at once.
  process.on('disconnect', () => process.exit(0));
  const handle =
    role === 'load'
      ? await loadRole()
      : async (message: { type: string }) => {
          if (message.type === 'cpu') {
            const { user, system } = process.cpuUsage();
            return { micros: user + system };
          }
          return { port: await serverRole(message as unknown as ServerInit) };
        };
  process.on('message', (message: { type: string }) => {
    handle(message).then(
      (reply) => process.send!(reply),
      (error: unknown) =>
        process.send!({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
    );
  });
}
