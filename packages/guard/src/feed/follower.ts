import { setTimeout as sleep } from 'node:timers/promises';
import { GuardError } from '../errors.ts';
import { emit } from '../events.ts';
import { describe, type FetchFunction, fetchJson, statusError } from '../http/fetch.ts';
import type { RevocationIndex } from '../model/revocation-index.ts';
import { type SseEvent, SseLimitError, SseParser } from './sse.ts';
import {
  FEED_PATHS,
  HEARTBEAT_MS,
  parseEntriesFrame,
  parseHeartbeatFrame,
  parseResetFrame,
  parseSnapshot,
  type ReceiptBody,
  STREAM_EVENTS,
} from './wire.ts';

/** A caught-up guard still reports its cursor this often (on a heartbeat), so the server sees it alive, in ms. */
const RECEIPT_REFRESH_MS = 5000;

/**
 * How fresh the guard's revocation index is.
 * - `starting`: not yet followed the live stream (the snapshot may be loaded).
 * - `live`: connected, caught up, and freshness confirmed within `maxStalenessMs`.
 * - `reconnecting`: not connected (or not caught up), but freshness was confirmed within `maxStalenessMs`.
 * - `stale`: freshness not confirmed within `maxStalenessMs`: the guard's stale policy applies.
 */
export type FeedState = 'starting' | 'live' | 'reconnecting' | 'stale';

export interface ReconnectOptions {
  /** First delay after a failure, in milliseconds. Default 250. */
  readonly initialDelayMs?: number;
  /** Largest delay, in milliseconds. Default 10000. */
  readonly maxDelayMs?: number;
}

export interface FeedFollowerOptions {
  /** The server's base URL; feed paths ({@link FEED_PATHS}) are appended to it. */
  readonly serverUrl: string;
  /** The `Authorization` header value (Basic client credentials of a client allowed to introspect). */
  readonly authorization: string;
  readonly index: RevocationIndex;
  readonly fetch: FetchFunction;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /** Freshness bound, in milliseconds. */
  readonly maxStalenessMs: number;
  readonly reconnect?: ReconnectOptions;
  /** A stream silent for this long (no heartbeat, no entry) is dropped and reopened, in milliseconds. */
  readonly idleTimeoutMs: number;
  /** Timeout of the snapshot request, in milliseconds. */
  readonly requestTimeoutMs: number;
  /** Largest snapshot accepted, in bytes. */
  readonly maxSnapshotBytes: number;
  /** Largest stream event accepted, in characters. */
  readonly maxEventChars: number;
  /** Source of jitter, in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /**
   * Names this guard to the server (stream `guard_id`) and turns receipts on: after applying entries, and on
   * heartbeats, the follower POSTs the cursor it has applied ({@link FEED_PATHS}`.receipts`). Default: none
   * (anonymous stream, no receipts). Must match {@link GUARD_ID_PATTERN}.
   */
  readonly guardId?: string;
}

/**
 * Keeps a {@link RevocationIndex} equal to the server's revocation log over HTTP: loads a snapshot, then
 * follows the event stream from the snapshot's cursor. After a disconnect it resumes from its cursor after an
 * exponential backoff with jitter; when the server answers `reset` (it does not know the cursor: its log was
 * replaced) it reloads the snapshot. It never skips an entry: the stream resumes exactly after the last
 * applied cursor, and an invalid frame drops the connection rather than the frame.
 */
export class FeedFollower {
  readonly #options: FeedFollowerOptions;
  readonly #index: RevocationIndex;
  readonly #closing = new AbortController();
  readonly #random: () => number;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  #loop: Promise<void> | undefined;
  #needSnapshot = true;
  #lastConfirmedMs: number | undefined;
  #connected = false;
  #live = false;
  #everLive = false;
  #serverCursor: number | undefined;
  #clockOffsetMs: number | undefined;
  #lastError: GuardError | undefined;
  #reconnects = 0;
  /** The connection that just ended reached `live` (so the backoff starts over). */
  #wasLive = false;
  /** The server asked for a snapshot reload: reconnect at once. */
  #resetRequested = false;
  readonly #ready: Promise<void>;
  #settleReady: ((error?: GuardError) => void) | undefined;
  /** Heartbeat period asked of the server: several heartbeats per staleness bound. */
  readonly #heartbeatMs: number;
  #reportedCursor: number | undefined;
  #lastReportMs: number | undefined;
  #receiptDue = false;
  #receiptSending = false;
  #receipts: Promise<void> | undefined;

  constructor(options: FeedFollowerOptions) {
    this.#options = options;
    this.#index = options.index;
    this.#random = options.random ?? Math.random;
    this.#initialDelayMs = options.reconnect?.initialDelayMs ?? 250;
    this.#maxDelayMs = options.reconnect?.maxDelayMs ?? 10_000;
    this.#heartbeatMs = Math.min(
      HEARTBEAT_MS.default,
      Math.max(HEARTBEAT_MS.min, Math.floor(options.maxStalenessMs / 4)),
    );
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#settleReady = (error) => {
        this.#settleReady = undefined;
        if (error) reject(error);
        else resolve();
      };
    });
    this.#ready.catch(() => {});
  }

  /** Starts following (once). */
  start(): void {
    this.#loop ??= this.#run();
  }

  /**
   * Resolves the first time the follower is live (snapshot loaded, stream caught up). Rejects if the server
   * refuses the credentials before that, or when the follower is closed first.
   */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** The instant (ms since the epoch, local clock) up to which the index is known to match the server's log. */
  get lastConfirmedMs(): number | undefined {
    return this.#lastConfirmedMs;
  }

  /** The cursor of the server's last heartbeat. */
  get serverCursor(): number | undefined {
    return this.#serverCursor;
  }

  /** Server clock minus local clock at the last heartbeat, in milliseconds (network delay included). */
  get clockOffsetMs(): number | undefined {
    return this.#clockOffsetMs;
  }

  get lastError(): GuardError | undefined {
    return this.#lastError;
  }

  /** The cursor the server last acknowledged in a receipt; undefined before the first. */
  get reportedCursor(): number | undefined {
    return this.#reportedCursor;
  }

  /** How many times the stream was reopened after a failure or a reset. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** True when freshness was confirmed within `maxStalenessMs` of `nowMs`. */
  isFresh(nowMs: number): boolean {
    const confirmed = this.#lastConfirmedMs;
    return confirmed !== undefined && nowMs - confirmed <= this.#options.maxStalenessMs;
  }

  state(nowMs: number): FeedState {
    if (!this.#everLive)
      return this.#lastConfirmedMs !== undefined && !this.isFresh(nowMs) ? 'stale' : 'starting';
    if (!this.isFresh(nowMs)) return 'stale';
    return this.#live ? 'live' : 'reconnecting';
  }

  /** Milliseconds since freshness was last confirmed, or undefined before the first snapshot. */
  lagMs(nowMs: number): number | undefined {
    return this.#lastConfirmedMs === undefined ? undefined : Math.max(0, nowMs - this.#lastConfirmedMs);
  }

  /** Stops following and waits for the loop to end. */
  async close(): Promise<void> {
    this.#closing.abort();
    this.#settleReady?.(new GuardError('REVOKD_GUARD_CLOSED', 'the guard was closed'));
    await Promise.all([this.#loop, this.#receipts]);
  }

  async #run(): Promise<void> {
    let attempt = 0;
    const signal = this.#closing.signal;
    while (!signal.aborted) {
      let during: 'snapshot' | 'stream' = 'snapshot';
      try {
        if (this.#needSnapshot) await this.#loadSnapshot();
        during = 'stream';
        await this.#follow();
      } catch (error) {
        if (signal.aborted) break;
        this.#fail(error instanceof GuardError ? error : toGuardError(error), during);
      }
      if (signal.aborted) break;
      if (this.#wasLive) attempt = 0;
      this.#wasLive = false;
      // The first reset after a live connection reloads at once; repeated ones back off like failures.
      const delayMs =
        this.#resetRequested && attempt === 0
          ? 0
          : backoffDelayMs(attempt, this.#initialDelayMs, this.#maxDelayMs, this.#random);
      attempt += 1;
      this.#resetRequested = false;
      this.#reconnects += 1;
      emit(() => ({ type: 'disconnected', cursor: this.#index.cursor, retryInMs: delayMs }));
      if (delayMs > 0) {
        try {
          await sleep(delayMs, undefined, { signal });
        } catch {
          break;
        }
      }
    }
  }

  #fail(error: GuardError, during: 'snapshot' | 'stream'): void {
    this.#lastError = error;
    emit(() => ({ type: 'error', during, code: error.code, message: error.message }));
    if (error.code === 'REVOKD_GUARD_UNAUTHORIZED') this.#settleReady?.(error);
  }

  async #loadSnapshot(): Promise<void> {
    const startedMs = this.#options.now();
    const body = await fetchJson(this.#url(FEED_PATHS.snapshot), {
      fetch: this.#options.fetch,
      timeoutMs: this.#options.requestTimeoutMs,
      maxBytes: this.#options.maxSnapshotBytes,
      headers: { authorization: this.#options.authorization, 'cache-control': 'no-store' },
      signal: this.#closing.signal,
    });
    const snapshot = parseSnapshot(body);
    if (snapshot === undefined) {
      throw new GuardError('REVOKD_GUARD_PROTOCOL', 'the snapshot is not a valid revocation snapshot');
    }
    this.#index.reset(snapshot.rules, snapshot.cursor);
    this.#index.prune(this.#options.now());
    this.#needSnapshot = false;
    // Everything committed before the request was sent is in the snapshot.
    this.#lastConfirmedMs = Math.max(this.#lastConfirmedMs ?? startedMs, startedMs);
    emit(() => ({ type: 'snapshot', cursor: snapshot.cursor, rules: snapshot.rules.length }));
  }

  async #follow(): Promise<void> {
    const after = this.#index.cursor;
    const connection = new AbortController();
    const signal = AbortSignal.any([this.#closing.signal, connection.signal]);
    let idle = false;
    const watchdog = setTimeout(() => {
      idle = true;
      connection.abort();
    }, this.#options.idleTimeoutMs);
    const query = new URLSearchParams({ after: String(after), heartbeat_ms: String(this.#heartbeatMs) });
    if (this.#options.guardId !== undefined) query.set('guard_id', this.#options.guardId);
    const url = `${this.#url(FEED_PATHS.stream)}?${query}`;
    try {
      let response: Response;
      try {
        response = await this.#options.fetch(url, {
          headers: {
            accept: 'text/event-stream',
            authorization: this.#options.authorization,
            'cache-control': 'no-store',
          },
          signal,
          redirect: 'error',
        });
      } catch (cause) {
        throw new GuardError('REVOKD_GUARD_HTTP', `GET ${url} failed: ${describe(cause)}`, { cause });
      }
      if (!response.ok || !response.body) {
        await response.body?.cancel().catch(() => {});
        throw statusError(url, response.status);
      }
      if (!(response.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream')) {
        await response.body.cancel().catch(() => {});
        throw new GuardError('REVOKD_GUARD_PROTOCOL', `GET ${url}: not an event stream`);
      }
      this.#connected = true;
      // A new stream is a new registration on the server: report on its first heartbeat.
      this.#lastReportMs = undefined;
      emit(() => ({ type: 'connected', after }));
      const parser = new SseParser({
        onEvent: (event) => this.#onEvent(event),
        maxEventChars: this.#options.maxEventChars,
      });
      const decoder = new TextDecoder();
      try {
        for await (const chunk of response.body) {
          watchdog.refresh();
          parser.push(decoder.decode(chunk, { stream: true }));
          if (this.#needSnapshot) break;
        }
      } catch (cause) {
        if (cause instanceof GuardError) throw cause;
        if (cause instanceof SseLimitError) throw new GuardError('REVOKD_GUARD_PROTOCOL', cause.message);
        if (idle)
          throw new GuardError(
            'REVOKD_GUARD_HTTP',
            `GET ${url}: no data for ${this.#options.idleTimeoutMs} ms`,
          );
        throw new GuardError('REVOKD_GUARD_HTTP', `GET ${url}: stream failed: ${describe(cause)}`, { cause });
      } finally {
        parser.end();
      }
      if (!this.#needSnapshot && !this.#closing.signal.aborted) {
        throw new GuardError('REVOKD_GUARD_HTTP', `GET ${url}: the server ended the stream`);
      }
    } finally {
      clearTimeout(watchdog);
      connection.abort();
      this.#connected = false;
      this.#live = false;
    }
  }

  #onEvent(event: SseEvent): void {
    switch (event.type) {
      case STREAM_EVENTS.entries: {
        const entries = parseEntriesFrame(event.data);
        if (entries === undefined) throw new GuardError('REVOKD_GUARD_PROTOCOL', 'invalid entries frame');
        const before = this.#index.cursor;
        this.#index.apply(entries);
        if (this.#index.cursor !== before) this.#report();
        return;
      }
      case STREAM_EVENTS.heartbeat: {
        const heartbeat = parseHeartbeatFrame(event.data);
        if (heartbeat === undefined) throw new GuardError('REVOKD_GUARD_PROTOCOL', 'invalid heartbeat frame');
        if (heartbeat.cursor < this.#index.cursor) {
          // The server claims less than we hold: its log is not the one we followed.
          this.#requestSnapshot('heartbeat_behind', heartbeat.cursor);
          return;
        }
        const nowMs = this.#options.now();
        this.#serverCursor = heartbeat.cursor;
        this.#clockOffsetMs = heartbeat.serverTimeMs - nowMs;
        this.#lastConfirmedMs = nowMs;
        if (
          this.#reportedCursor !== this.#index.cursor ||
          this.#lastReportMs === undefined ||
          nowMs - this.#lastReportMs >= RECEIPT_REFRESH_MS
        ) {
          this.#report();
        }
        if (!this.#live) {
          this.#live = true;
          this.#wasLive = true;
          emit(() => ({ type: 'live', cursor: this.#index.cursor }));
          if (!this.#everLive) {
            this.#everLive = true;
            this.#settleReady?.();
          }
        }
        return;
      }
      case STREAM_EVENTS.reset: {
        const reset = parseResetFrame(event.data);
        this.#requestSnapshot(reset?.reason ?? 'reset', reset?.cursor ?? 0);
        return;
      }
      default:
        // Unknown event types are ignored, so the server can add new ones.
        return;
    }
  }

  /**
   * Schedules a receipt of the applied cursor. Never blocks the caller: one request is in flight at a time,
   * frames applied meanwhile are covered by the next one, and a failed receipt is not retried until the next
   * batch or heartbeat.
   */
  #report(): void {
    if (this.#options.guardId === undefined || this.#closing.signal.aborted) return;
    this.#receiptDue = true;
    if (this.#receiptSending) return;
    this.#receiptSending = true;
    this.#receipts = this.#sendReceipts(this.#options.guardId);
  }

  async #sendReceipts(guardId: string): Promise<void> {
    try {
      // Let the rest of the chunk be applied first: one receipt covers the frames that arrived together.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.#receiptDue && !this.#closing.signal.aborted) {
        this.#receiptDue = false;
        if (!(await this.#postReceipt(guardId, this.#index.cursor))) return;
      }
    } finally {
      this.#receiptSending = false;
    }
  }

  async #postReceipt(guardId: string, cursor: number): Promise<boolean> {
    try {
      const response = await this.#options.fetch(this.#url(FEED_PATHS.receipts), {
        method: 'POST',
        headers: {
          authorization: this.#options.authorization,
          'content-type': 'application/json',
          'cache-control': 'no-store',
        },
        body: JSON.stringify({ guardId, cursor } satisfies ReceiptBody),
        signal: AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#options.requestTimeoutMs)]),
        redirect: 'error',
      });
      await response.body?.cancel().catch(() => {});
      if (!response.ok) return false;
      this.#reportedCursor = cursor;
      this.#lastReportMs = this.#options.now();
      return true;
    } catch {
      return false;
    }
  }

  #requestSnapshot(reason: string, cursor: number): void {
    this.#needSnapshot = true;
    this.#resetRequested = true;
    emit(() => ({ type: 'reset', reason, cursor }));
  }

  #url(path: string): string {
    return `${this.#options.serverUrl.replace(/\/+$/, '')}${path}`;
  }

  /** Whether a stream is open (live or still sending its backlog). */
  get connected(): boolean {
    return this.#connected;
  }
}

/**
 * Exponential backoff with jitter: the ceiling doubles per attempt from `initialMs` up to `maxMs`, and the delay
 * is drawn uniformly from the upper half of it, so reconnecting guards spread out but never retry at once.
 */
export function backoffDelayMs(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

function toGuardError(error: unknown): GuardError {
  return new GuardError('REVOKD_GUARD_HTTP', describe(error), { cause: error });
}
