/**
 * One guard process of the `propagation` benchmark: `createGuard` following a real `revokd serve`, nothing else
 * (no HTTP server: the driver talks to it over the IPC channel of `child_process.fork`). The driver says which
 * feed to follow, block by block: the server's HTTP stream (`httpFeed()`, the default), or the Redis stream its
 * relay writes (`[redisFeed({ client }), httpFeed()]`, as cluster mode deploys it). Each `follow` closes the
 * current guard and starts a new one, so both transports start every block alike.
 *
 * Measuring without polling: `RevocationIndex.prototype.apply` (what the guard's feed follower calls for each
 * entries frame of the stream, whichever the transport) is wrapped, in this process only, so that right after
 * each applied frame the next watched token is checked with the public `guard.check()`. The first time it is
 * rejected (`revoked`), the instant is taken with `process.hrtime` (CLOCK_MONOTONIC on Linux: one clock for
 * every process of the machine, so comparable with the driver's), and sent to the driver. The watched tokens are
 * checked once beforehand, so these checks are answered from the verified-token cache (a few hundred ns each).
 *
 * Messages from the driver: `{ type: 'clock' }` → `{ type: 'clock', at }`; `{ type: 'follow', feed }` →
 * `{ type: 'ready', guardId }`; `{ type: 'watch', tokens }` (revoked in this order) → `{ type: 'watching' }`;
 * `{ type: 'feed' }` → `{ type: 'feed', feed, connected }` (the transport in use, and the feed connections opened
 * since the last `follow`, by transport). To the driver, besides the answers: `{ type: 'rejected', index, at }`
 * per watched token, or `{ type: 'failed', message }`.
 * Configured by environment: `GUARD_ISSUER`, `GUARD_CLIENT_ID`, `GUARD_CLIENT_SECRET`, `GUARD_ID`,
 * `GUARD_AUDIENCE`, and `GUARD_REDIS_URL` (required to follow Redis).
 */
import { subscribe } from 'node:diagnostics_channel';
import {
  createGuard,
  type FeedTransport,
  GUARD_CHANNEL,
  type Guard,
  type GuardEvent,
  httpFeed,
} from '@revokd/guard';
import { redisFeed } from '@revokd/guard/redis';
import { Redis } from 'ioredis';
import { RevocationIndex } from '../../packages/guard/src/model/revocation-index.ts';

export type FeedName = 'http' | 'redis';

type FromDriver =
  | { type: 'clock' }
  | { type: 'follow'; feed: FeedName }
  | { type: 'watch'; tokens: string[] }
  | { type: 'feed' };

/** Milliseconds on the machine-wide monotonic clock (the same in every process). */
function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function env(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
}

function send(message: unknown): void {
  process.send?.(message);
}

let headers: string[] = [];
let next = 0;
let failed = false;
let guard: Guard | undefined;
/** Feed connections opened since the last `follow`, by transport: a fallback to HTTP would show here. */
let connected: Record<string, number> = {};
let redis: Redis | undefined;

subscribe(GUARD_CHANNEL, (message) => {
  const event = message as GuardEvent;
  if (event.type === 'connected') connected[event.feed] = (connected[event.feed] ?? 0) + 1;
});

function feeds(feed: FeedName): FeedTransport[] {
  if (feed === 'http') return [httpFeed()];
  if (redis === undefined) {
    redis = new Redis(env('GUARD_REDIS_URL'), { maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
  }
  return [redisFeed({ client: redis }), httpFeed()];
}

async function follow(feed: FeedName): Promise<void> {
  headers = [];
  next = 0;
  await guard?.close();
  connected = {};
  guard = createGuard({
    issuer: env('GUARD_ISSUER'),
    audience: env('GUARD_AUDIENCE', 'https://api.example.com'),
    clientId: env('GUARD_CLIENT_ID'),
    clientSecret: env('GUARD_CLIENT_SECRET'),
    guardId: env('GUARD_ID'),
    readyTimeoutMs: 30_000,
    feed: feeds(feed),
  });
  await guard.ready();
}

/** Right after a frame is applied: records every watched token the guard now rejects, in order. */
function afterApply(): void {
  while (guard !== undefined && next < headers.length && !failed) {
    const decision = guard.check(headers[next]);
    if (decision.ok) return;
    const at = monotonicMs();
    if (decision.reason !== 'revoked') {
      failed = true;
      send({ type: 'failed', message: `token ${next} rejected for ${decision.reason}, not revoked` });
      return;
    }
    send({ type: 'rejected', index: next, at });
    next += 1;
  }
}

const apply = RevocationIndex.prototype.apply;
RevocationIndex.prototype.apply = function applyAndCheck(this: RevocationIndex, entries) {
  apply.call(this, entries);
  if (next < headers.length) afterApply();
};

function watch(tokens: readonly string[]): void {
  const watched = tokens.map((token) => `Bearer ${token}`);
  for (const [i, header] of watched.entries()) {
    const decision = guard!.check(header);
    if (!decision.ok) {
      send({ type: 'failed', message: `token ${i} not accepted before its revocation: ${decision.reason}` });
      return;
    }
  }
  headers = watched;
  next = 0;
  send({ type: 'watching' });
}

process.on('message', (message: FromDriver) => {
  if (message.type === 'clock') {
    send({ type: 'clock', at: monotonicMs() });
  } else if (message.type === 'follow') {
    follow(message.feed).then(
      () => send({ type: 'ready', guardId: guard!.health().guardId }),
      (error: unknown) =>
        send({ type: 'failed', message: `guard not ready (${message.feed}): ${String(error)}` }),
    );
  } else if (message.type === 'watch') {
    watch(message.tokens);
  } else if (message.type === 'feed') {
    send({ type: 'feed', feed: guard?.health().feed, connected });
  }
});
process.on('disconnect', () => {
  void (guard?.close() ?? Promise.resolve()).finally(() => {
    redis?.disconnect();
    process.exit(0);
  });
});
send({ type: 'started' });
