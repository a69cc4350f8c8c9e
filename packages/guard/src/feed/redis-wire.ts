/**
 * The revocation log as a Redis stream: the format the server nodes' relay writes (`packages/server`,
 * `src/feed/redis-relay.ts`) and `redisFeed()` reads. One stream key; every record's id carries a cursor.
 *
 * - An **entries** record holds consecutive log entries `(prev, last]` (those the log still had) and has the
 *   id `<last>-0`. Fields: `event` `entries`, `data` the SSE entries frame's JSON (`{ entries: [...] }`, see
 *   `wire.ts`), `prev` the cursor this record continues from: every log entry in `(prev, last]` that the log
 *   holds is in this record, and the stream before it ends at `prev` — or, when `prev` is beyond the record
 *   before, the stream has a hole there (Redis restarted empty, or the relay skipped ahead).
 * - A **heartbeat** record has the id `<head>-<n>` with n ≥ 1 (sequence 0 is only ever an entries record),
 *   where `head` is the stream's last entries cursor. Fields: `event` `heartbeat`, `data` the SSE heartbeat
 *   frame's JSON (`{ cursor: head, serverTimeMs }`): as of `serverTimeMs`, the server node that wrote it had
 *   applied nothing beyond `head`. A heartbeat still last in the stream is replaced by the next one.
 *
 * So a consumer that has applied cursor `c` reads with `XREAD ... STREAMS <key> <c>-0`: it gets every entries
 * record whose last cursor is beyond `c` (id `L-0` > `c-0` exactly when `L > c`) and the heartbeats at its own
 * cursor (`c-n`, n ≥ 1), and nothing older. It applies an entries record when `prev ≤ c` (the record continues
 * what it holds; entries ≤ c inside are skipped) and asks for a snapshot otherwise; a heartbeat beyond `c`
 * means entries are missing. A heartbeat at `c` confirms freshness only if it was written after the consumer
 * had read the stream to its end: heartbeats are records, and one read from a backlog (or left by relays that
 * have since stopped) may be arbitrarily old.
 */
import type { LogEntry } from '../model/rule.ts';
import { type HeartbeatFrame, parseEntriesFrame, parseHeartbeatFrame, STREAM_EVENTS } from './wire.ts';

/** Default stream key. The hash tag (`{revokd}`) keeps every key of the feed in one Redis Cluster slot. */
export const REDIS_FEED_STREAM_KEY = '{revokd}:log';

/** Field names of a stream record. */
export const REDIS_FEED_FIELDS = { event: 'event', data: 'data', prev: 'prev' } as const;

/** The id to resume after `cursor` with (`XREAD ... STREAMS key <id>`): see the module comment. */
export function redisResumeId(cursor: number): string {
  return `${cursor}-0`;
}

/**
 * A companion key of `streamKey` in the same Redis Cluster slot: `<streamKey>:<suffix>` when the stream key
 * has a hash tag, else `{<streamKey>}:<suffix>` (a key without a tag hashes whole, like the tag `{<key>}`).
 */
export function redisCompanionKey(streamKey: string, suffix: string): string {
  const open = streamKey.indexOf('{');
  const close = open === -1 ? -1 : streamKey.indexOf('}', open + 1);
  const tagged = close > open + 1;
  return tagged ? `${streamKey}:${suffix}` : `{${streamKey}}:${suffix}`;
}

export type RedisFeedRecord =
  | {
      readonly kind: 'entries';
      /** The cursor the record continues from. */
      readonly prev: number;
      /** Its entries, strictly increasing, the last one's cursor being the id's. */
      readonly entries: readonly LogEntry[];
    }
  | { readonly kind: 'heartbeat'; readonly heartbeat: HeartbeatFrame }
  /** A record of an event type this version does not know: ignored, so the relay can add new ones. */
  | { readonly kind: 'other' };

const RECORD_ID = /^([0-9]{1,16})-([0-9]{1,20})$/;

/**
 * Validates one stream record (its id and its flat `[field, value, ...]` list). Undefined for anything that is
 * not a valid record of this format, including an id that does not match the content.
 */
export function parseRedisFeedRecord(id: unknown, fields: unknown): RedisFeedRecord | undefined {
  if (typeof id !== 'string' || !Array.isArray(fields) || fields.length % 2 !== 0) return undefined;
  const match = RECORD_ID.exec(id);
  if (!match) return undefined;
  const idCursor = Number(match[1]);
  const sequence = match[2]!;
  if (!Number.isSafeInteger(idCursor)) return undefined;
  let event: unknown;
  let data: unknown;
  let prev: unknown;
  for (let i = 0; i < fields.length; i += 2) {
    const value: unknown = fields[i + 1];
    switch (fields[i]) {
      case REDIS_FEED_FIELDS.event:
        event = value;
        break;
      case REDIS_FEED_FIELDS.data:
        data = value;
        break;
      case REDIS_FEED_FIELDS.prev:
        prev = value;
        break;
      default:
        // Unknown fields are ignored, so the relay can add new ones.
        break;
    }
  }
  if (typeof event !== 'string' || typeof data !== 'string') return undefined;
  if (event === STREAM_EVENTS.entries) {
    if (sequence !== '0' || typeof prev !== 'string' || !/^[0-9]{1,16}$/.test(prev)) return undefined;
    const prevCursor = Number(prev);
    const entries = parseEntriesFrame(data, prevCursor);
    if (entries === undefined || entries.length === 0 || entries.at(-1)!.cursor !== idCursor)
      return undefined;
    return { kind: 'entries', prev: prevCursor, entries };
  }
  if (event === STREAM_EVENTS.heartbeat) {
    const heartbeat = parseHeartbeatFrame(data);
    if (heartbeat === undefined || sequence === '0' || heartbeat.cursor !== idCursor) return undefined;
    return { kind: 'heartbeat', heartbeat };
  }
  return { kind: 'other' };
}
