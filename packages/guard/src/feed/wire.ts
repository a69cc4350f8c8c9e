/**
 * Wire formats of the revocation feed, shared by the server (which writes them) and the guard (which reads
 * them). Everything read from the wire is validated and copied into fresh objects: a rule the guard does not
 * understand is a protocol error, never silently dropped (dropping a rule would fail open).
 */
import type { LogEntry, Rule } from '../model/rule.ts';
import { encodeSseEvent } from './sse.ts';

/** Endpoint paths, relative to the server's base URL (its issuer). */
export const FEED_PATHS = {
  /** `GET` → {@link SnapshotBody}. */
  snapshot: '/revocations/snapshot',
  /** `GET ?after=N&limit=M` → {@link LogPage}. */
  log: '/revocations/log',
  /**
   * `GET ?after=N[&guard_id=ID][&heartbeat_ms=MS]` → `text/event-stream` of {@link STREAM_EVENTS}. A guard that
   * names itself (`guard_id`, see {@link GUARD_ID_PATTERN}) is listed by the server while the stream is open and
   * is expected to report receipts; `heartbeat_ms` asks for heartbeats at that period ({@link HEARTBEAT_MS}).
   */
  stream: '/revocations/stream',
  /** `POST` {@link ReceiptBody} (JSON) → `204`: the guard has applied the log up to `cursor`. */
  receipts: '/revocations/receipts',
} as const;

/** A guard id: 1-128 printable ASCII characters, no spaces. */
export const GUARD_ID_PATTERN = /^[\x21-\x7E]{1,128}$/;

/** Bounds of the heartbeat period a guard may ask for on the stream, in milliseconds. */
export const HEARTBEAT_MS = { min: 250, default: 5000, max: 60_000 } as const;

/**
 * A receipt: the guard `guardId` has applied every log entry up to `cursor` to its index (and so enforces
 * them). Sent after applying entries (coalesced) and on heartbeats, with the stream's credentials.
 */
export interface ReceiptBody {
  readonly guardId: string;
  readonly cursor: number;
}

/**
 * Event types of the revocation stream.
 * - `entries`: `{ entries: LogEntry[] }`, cursors strictly increasing, all after the requested cursor; the SSE
 *   `id` is the last cursor.
 * - `heartbeat`: `{ cursor, serverTimeMs }`: as of `serverTimeMs`, every entry up to `cursor` has been sent on
 *   this stream (entries pruned as expired are skipped). Sent once the backlog is sent, then every few seconds.
 * - `reset`: `{ reason, cursor }`: the requested cursor is unknown to the server (its log was replaced or
 *   restored): load a snapshot and follow from its cursor. The server closes the stream after it.
 */
export const STREAM_EVENTS = { entries: 'entries', heartbeat: 'heartbeat', reset: 'reset' } as const;

export interface SnapshotBody {
  readonly cursor: number;
  readonly rules: readonly Rule[];
}

export interface LogPage {
  readonly entries: readonly LogEntry[];
  readonly cursor: number;
}

export interface EntriesFrame {
  readonly entries: readonly LogEntry[];
}

export interface HeartbeatFrame {
  readonly cursor: number;
  readonly serverTimeMs: number;
}

export interface ResetFrame {
  /** `cursor_ahead`: the requested cursor is beyond the end of the server's log. */
  readonly reason: string;
  readonly cursor: number;
}

// --- encoding (server side) ---

export function encodeEntriesFrame(entries: readonly LogEntry[]): string {
  const last = entries.at(-1);
  return encodeSseEvent({
    type: STREAM_EVENTS.entries,
    ...(last ? { id: String(last.cursor) } : {}),
    data: JSON.stringify({ entries } satisfies EntriesFrame),
  });
}

export function encodeHeartbeatFrame(frame: HeartbeatFrame): string {
  return encodeSseEvent({
    type: STREAM_EVENTS.heartbeat,
    data: JSON.stringify({ cursor: frame.cursor, serverTimeMs: frame.serverTimeMs }),
  });
}

export function encodeResetFrame(frame: ResetFrame): string {
  return encodeSseEvent({
    type: STREAM_EVENTS.reset,
    data: JSON.stringify({ reason: frame.reason, cursor: frame.cursor }),
  });
}

// --- decoding (guard side); each returns undefined for anything invalid ---

export function parseSnapshot(value: unknown): SnapshotBody | undefined {
  if (!isRecord(value) || !isCursor(value.cursor, true) || !Array.isArray(value.rules)) return undefined;
  const rules: Rule[] = new Array(value.rules.length);
  for (let i = 0; i < value.rules.length; i++) {
    const rule = parseRule(value.rules[i]);
    if (rule === undefined) return undefined;
    rules[i] = rule;
  }
  return { cursor: value.cursor, rules };
}

/** Entries must be in strictly increasing cursor order, each after `after`. */
export function parseEntries(value: unknown, after = 0): LogEntry[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const entries: LogEntry[] = new Array(value.length);
  let previous = after;
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (!isRecord(item) || !isCursor(item.cursor, false) || item.cursor <= previous) return undefined;
    const rule = parseRule(item.rule);
    if (rule === undefined) return undefined;
    entries[i] = { cursor: item.cursor, rule };
    previous = item.cursor;
  }
  return entries;
}

export function parseEntriesFrame(data: string, after = 0): LogEntry[] | undefined {
  const value = parseJson(data);
  return isRecord(value) ? parseEntries(value.entries, after) : undefined;
}

export function parseHeartbeatFrame(data: string): HeartbeatFrame | undefined {
  const value = parseJson(data);
  if (!isRecord(value) || !isCursor(value.cursor, true) || !isFiniteNumber(value.serverTimeMs))
    return undefined;
  return { cursor: value.cursor, serverTimeMs: value.serverTimeMs };
}

export function parseResetFrame(data: string): ResetFrame | undefined {
  const value = parseJson(data);
  if (!isRecord(value) || typeof value.reason !== 'string' || !isCursor(value.cursor, true)) return undefined;
  return { reason: value.reason, cursor: value.cursor };
}

/** Validates a rule and returns a clean copy holding only its known members. */
export function parseRule(value: unknown): Rule | undefined {
  if (!isRecord(value) || !isFiniteNumber(value.expiresAtMs)) return undefined;
  const { expiresAtMs } = value;
  switch (value.kind) {
    case 'token':
      return isString(value.jti) ? { kind: 'token', jti: value.jti, expiresAtMs } : undefined;
    case 'session':
      return isString(value.sid) ? { kind: 'session', sid: value.sid, expiresAtMs } : undefined;
    case 'family':
      return isString(value.fid) ? { kind: 'family', fid: value.fid, expiresAtMs } : undefined;
    case 'subject':
      return isString(value.sub) && isFiniteNumber(value.notBeforeUs)
        ? { kind: 'subject', sub: value.sub, notBeforeUs: value.notBeforeUs, expiresAtMs }
        : undefined;
    case 'client':
      return isString(value.clientId) && isFiniteNumber(value.notBeforeUs)
        ? { kind: 'client', clientId: value.clientId, notBeforeUs: value.notBeforeUs, expiresAtMs }
        : undefined;
    case 'global':
      return isFiniteNumber(value.notBeforeUs)
        ? { kind: 'global', notBeforeUs: value.notBeforeUs, expiresAtMs }
        : undefined;
    case 'claim':
      return isString(value.claim) && isString(value.value) && isFiniteNumber(value.notBeforeUs)
        ? {
            kind: 'claim',
            claim: value.claim,
            value: value.value,
            notBeforeUs: value.notBeforeUs,
            expiresAtMs,
          }
        : undefined;
    case 'allow':
      return isString(value.jti) ? { kind: 'allow', jti: value.jti, expiresAtMs } : undefined;
    default:
      return undefined;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isString(value: unknown): value is string {
  return typeof value === 'string';
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isCursor(value: unknown, allowZero: boolean): value is number {
  return Number.isSafeInteger(value) && (value as number) >= (allowZero ? 0 : 1);
}
