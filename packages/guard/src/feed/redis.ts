/**
 * `@revokd/guard/redis`: follow the revocation log from Redis, where the server nodes' relay publishes it
 * (cluster mode), instead of a server's event stream. No Redis client is bundled: pass yours (ioredis `Redis`
 * or `Cluster` fit the structural {@link RedisFeedClient}).
 *
 * @example
 * ```ts
 * import { createGuard, httpFeed } from '@revokd/guard';
 * import { redisFeed } from '@revokd/guard/redis';
 * import { Redis } from 'ioredis';
 *
 * const guard = createGuard({ ...options, feed: [redisFeed({ client: new Redis(process.env.REDIS_URL) }), httpFeed()] });
 * ```
 */
import { GuardError } from '../errors.ts';
import { describe } from '../http/fetch.ts';
import { parseRedisFeedRecord, REDIS_FEED_STREAM_KEY, redisResumeId } from './redis-wire.ts';
import type { FeedConnection, FeedProbe, FeedTransport } from './transport.ts';

export {
  parseRedisFeedRecord,
  REDIS_FEED_FIELDS,
  REDIS_FEED_STREAM_KEY,
  type RedisFeedRecord,
  redisCompanionKey,
  redisResumeId,
} from './redis-wire.ts';

/** One Redis connection, as the feed uses it (ioredis `Redis` and `Cluster` fit). */
export interface RedisFeedConnection {
  /** `XREAD` with its arguments; resolves with the reply (null when `BLOCK` timed out). */
  xread(...args: never[]): Promise<unknown>;
  /** Closes the connection at once; pending commands are dropped. */
  disconnect(): void;
  /** Listens for connection errors (they are expected while Redis is down: the feed handles them). */
  on?(event: 'error', listener: (error: Error) => void): unknown;
}

/** A Redis client the feed can open its own connections from. It never sends commands on this one. */
export interface RedisFeedClient {
  /** A new connection with the same settings (ioredis `duplicate()`), used for one blocking read loop. */
  duplicate(): RedisFeedConnection;
}

export interface RedisFeedOptions {
  /** Your Redis client; the feed opens its own connections with `duplicate()` and closes them. */
  readonly client: RedisFeedClient;
  /** The stream the relay writes (server option of the same name). Default `{revokd}:log`. */
  readonly streamKey?: string;
  /** How long one `XREAD` blocks waiting for records, in milliseconds. Default 1000. */
  readonly blockMs?: number;
  /**
   * How long past `blockMs` an `XREAD` may go unanswered before Redis counts as unreachable (the guard then
   * falls back to its next feed), in milliseconds. Default 1000.
   */
  readonly responseTimeoutMs?: number;
}

/** Records read per `XREAD`. */
const COUNT = 100;

/**
 * A feed transport that reads the relay's Redis stream with a blocking `XREAD` on a dedicated connection
 * (`client.duplicate()`), resuming after the guard's cursor. Entries that the stream cannot vouch for (a hole:
 * Redis restarted empty, or the stream was trimmed past the guard) ask for a snapshot reload over HTTP.
 * Freshness comes from the relays' heartbeats (about one per second) written while the guard follows, so a
 * stream without new heartbeats for the guard's `idleTimeoutMs` counts as failed (the relays may have stopped:
 * the guard falls back to its next feed), as does an `XREAD` unanswered for `blockMs + responseTimeoutMs`.
 * Receipts still go to the server over HTTP.
 */
export function redisFeed(options: RedisFeedOptions): FeedTransport {
  if (typeof options !== 'object' || options === null || typeof options.client?.duplicate !== 'function') {
    throw new GuardError('REVOKD_GUARD_CONFIG', 'redisFeed: client must be a Redis client with duplicate()');
  }
  const streamKey = options.streamKey ?? REDIS_FEED_STREAM_KEY;
  if (typeof streamKey !== 'string' || streamKey.length === 0) {
    throw new GuardError('REVOKD_GUARD_CONFIG', 'redisFeed: streamKey must be a non-empty string');
  }
  const settings: RedisFeedSettings = {
    client: options.client,
    streamKey,
    blockMs: positiveInteger(options.blockMs, 1000, 'blockMs'),
    responseTimeoutMs: positiveInteger(options.responseTimeoutMs, 1000, 'responseTimeoutMs'),
  };
  return Object.freeze({
    name: 'redis',
    follow: (connection: FeedConnection) => followStream(settings, connection),
    probe: (probe: FeedProbe) => probeStream(settings, probe),
  });
}

interface RedisFeedSettings {
  readonly client: RedisFeedClient;
  readonly streamKey: string;
  readonly blockMs: number;
  readonly responseTimeoutMs: number;
}

async function followStream(settings: RedisFeedSettings, connection: FeedConnection): Promise<void> {
  const redis = open(settings.client);
  const stop = () => redis.disconnect();
  connection.signal.addEventListener('abort', stop, { once: true });
  let cursor = connection.after;
  let lastId = redisResumeId(cursor);
  let connected = false;
  let lastHeardMs = performance.now();
  /**
   * The previous read reached the end of the stream, so what this one returns was written since: only such
   * heartbeats are recent (a heartbeat read from a backlog, or left by relays that stopped, may be old).
   */
  let atEnd = false;
  try {
    while (!connection.signal.aborted) {
      let reply: unknown;
      try {
        reply = await xread(
          settings,
          redis,
          ['COUNT', COUNT, 'BLOCK', settings.blockMs, 'STREAMS', settings.streamKey, lastId],
          connection.signal,
        );
      } catch (error) {
        if (connection.signal.aborted) return;
        throw error;
      }
      if (connection.signal.aborted) return;
      if (!connected) {
        connected = true;
        connection.connected();
      }
      const items = streamItems(reply, settings.streamKey, connection.maxEventChars);
      const recent = atEnd;
      atEnd = items.length < COUNT;
      for (const [id, fields] of items) {
        lastId = id;
        const record = parseRedisFeedRecord(id, fields);
        if (record === undefined) {
          throw new GuardError('REVOKD_GUARD_PROTOCOL', `invalid record ${id} in Redis stream`);
        }
        if (record.kind === 'entries') {
          const fresh = record.entries.filter((entry) => entry.cursor > cursor);
          if (fresh.length === 0) continue;
          if (record.prev > cursor) {
            // Entries between our cursor and `prev` are not in the stream: only a snapshot has them.
            connection.reset('redis_gap', record.prev);
            return;
          }
          connection.entries(fresh);
          cursor = fresh.at(-1)!.cursor;
          lastHeardMs = performance.now();
        } else if (record.kind === 'heartbeat') {
          const { heartbeat } = record;
          // Records come in id order, so a heartbeat beyond our cursor follows a hole (Redis restarted empty).
          if (heartbeat.cursor > cursor) {
            connection.reset('redis_gap', heartbeat.cursor);
            return;
          }
          if (heartbeat.cursor === cursor && recent) {
            connection.heartbeat(heartbeat);
            lastHeardMs = performance.now();
          }
        }
        if (connection.signal.aborted) return;
      }
      if (performance.now() - lastHeardMs > connection.idleTimeoutMs) {
        throw new GuardError(
          'REVOKD_GUARD_FEED',
          `Redis stream ${settings.streamKey}: no heartbeat for ${connection.idleTimeoutMs} ms`,
        );
      }
    }
  } finally {
    connection.signal.removeEventListener('abort', stop);
    redis.disconnect();
  }
}

/**
 * Whether a new record reaches the stream within the idle timeout (the relays write a heartbeat every second):
 * Redis answers and some server node is publishing. Records already there prove neither.
 */
async function probeStream(settings: RedisFeedSettings, probe: FeedProbe): Promise<boolean> {
  const redis = open(settings.client);
  try {
    const reply = await xread(
      settings,
      redis,
      ['COUNT', 1, 'BLOCK', probe.idleTimeoutMs, 'STREAMS', settings.streamKey, '$'],
      probe.signal,
      probe.idleTimeoutMs,
    );
    return streamItems(reply, settings.streamKey, probe.maxEventChars).length > 0;
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

function open(client: RedisFeedClient): RedisFeedConnection {
  const redis = client.duplicate();
  // Connection errors surface as failed reads; unlistened, the client would print them.
  redis.on?.('error', () => {});
  return redis;
}

/**
 * One `XREAD`, answered within `blockMs + responseTimeoutMs` or failed: a client waiting to reconnect would
 * otherwise hold the read (and the guard) for as long as Redis is down.
 */
async function xread(
  settings: RedisFeedSettings,
  redis: RedisFeedConnection,
  args: readonly (string | number)[],
  signal: AbortSignal,
  blockMs = settings.blockMs,
): Promise<unknown> {
  const limitMs = blockMs + settings.responseTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new GuardError('REVOKD_GUARD_FEED', `Redis: no answer to XREAD within ${limitMs} ms`)),
      limitMs,
    );
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const read = (redis.xread as (...a: Array<string | number>) => Promise<unknown>).call(redis, ...args);
  read.catch(() => {});
  try {
    return await Promise.race([read, deadline]);
  } catch (cause) {
    if (cause instanceof GuardError || signal.aborted) throw cause;
    throw new GuardError('REVOKD_GUARD_FEED', `Redis: XREAD failed: ${describe(cause)}`, { cause });
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * The `[id, fields]` items of `streamKey` in an `XREAD` reply, whichever shape the client gives it: RESP2
 * `[[key, items], ...]`, a flat `[key, items, ...]`, or a map (`{ key: items }`, `Map`). Null (timed out) is
 * no items. Anything else, or a value longer than `maxChars`, is a protocol error.
 */
function streamItems(reply: unknown, streamKey: string, maxChars: number): Array<[string, unknown[]]> {
  if (reply === null || reply === undefined) return [];
  let items: unknown;
  if (reply instanceof Map) items = reply.get(streamKey);
  else if (Array.isArray(reply)) {
    if (reply.length > 0 && Array.isArray(reply[0])) {
      items = (reply as unknown[][]).find((pair) => pair[0] === streamKey)?.[1];
    } else {
      for (let i = 0; i + 1 < reply.length; i += 2) if (reply[i] === streamKey) items = reply[i + 1];
    }
  } else if (typeof reply === 'object') items = (reply as Record<string, unknown>)[streamKey];
  if (items === undefined) return [];
  if (!Array.isArray(items)) throw new GuardError('REVOKD_GUARD_PROTOCOL', 'unexpected XREAD reply');
  const result: Array<[string, unknown[]]> = [];
  for (const item of items) {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !Array.isArray(item[1])) {
      throw new GuardError('REVOKD_GUARD_PROTOCOL', 'unexpected XREAD reply');
    }
    for (const value of item[1]) {
      if (typeof value === 'string' && value.length > maxChars) {
        throw new GuardError(
          'REVOKD_GUARD_PROTOCOL',
          `a Redis stream record exceeded ${maxChars} characters`,
        );
      }
    }
    result.push([item[0], item[1]]);
  }
  return result;
}

function positiveInteger(value: unknown, fallback: number, key: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > 3_600_000) {
    throw new GuardError('REVOKD_GUARD_CONFIG', `redisFeed: ${key} must be an integer from 1 to 3600000`);
  }
  return value as number;
}
