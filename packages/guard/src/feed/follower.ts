import { setTimeout as sleep } from 'node:timers/promises';
import { GuardError } from '../errors.ts';
import { emit } from '../events.ts';
import { describe, type FetchFunction, fetchJson } from '../http/fetch.ts';
import type { RevocationIndex } from '../model/revocation-index.ts';
import type { LogEntry } from '../model/rule.ts';
import { httpFeed } from './http.ts';
import type { FeedConnection, FeedEnvironment, FeedTransport } from './transport.ts';
import { FEED_PATHS, HEARTBEAT_MS, type HeartbeatFrame, parseSnapshot, type ReceiptBody } from './wire.ts';

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
  /**
   * Live transports, most preferred first. The follower uses the first; when one fails it falls back to the
   * next at once, and probes the earlier ones every `transportRetryMs` to return to them. Default: the
   * server's event stream only (`[httpFeed()]`).
   */
  readonly transports?: readonly FeedTransport[];
  /** While on a fallback transport, how often the preferred ones are probed, in milliseconds. Default 30000. */
  readonly transportRetryMs?: number;
}

/**
 * Keeps a {@link RevocationIndex} equal to the server's revocation log: loads a snapshot over HTTP, then
 * follows the log live from the snapshot's cursor through a {@link FeedTransport} (the server's event stream
 * by default). After a disconnect it resumes from its cursor after an exponential backoff with jitter, or falls
 * back to the next transport; when the feed asks for a `reset` (it cannot continue the cursor: the log was
 * replaced, or the entries the guard needs are gone from it) it reloads the snapshot. It never skips an entry:
 * every connection resumes exactly after the last applied cursor, and an invalid frame drops the connection
 * rather than the frame.
 */
export class FeedFollower {
  readonly #options: FeedFollowerOptions;
  readonly #index: RevocationIndex;
  readonly #closing = new AbortController();
  readonly #random: () => number;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #transports: readonly FeedTransport[];
  readonly #transportRetryMs: number;
  readonly #environment: FeedEnvironment;
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
  /** When the server last refused a receipt as `404` (it does not know this guard's connection), local ms. */
  #receiptRefusedMs: number | undefined;
  #receiptDue = false;
  #receiptSending = false;
  #receipts: Promise<void> | undefined;
  /** Index of the transport in use, in {@link FeedFollowerOptions.transports}. */
  #current = 0;
  /** The open connection, aborted to end it (reset, switch back to a preferred transport). */
  #connection: AbortController | undefined;
  /** A probe found a preferred transport working again: reconnect at once, on it. */
  #switchRequested = false;
  /** Cuts a backoff short (a switch back to a preferred transport). */
  #wake: AbortController | undefined;
  #probing: Promise<void> | undefined;

  constructor(options: FeedFollowerOptions) {
    this.#options = options;
    this.#index = options.index;
    this.#random = options.random ?? Math.random;
    this.#initialDelayMs = options.reconnect?.initialDelayMs ?? 250;
    this.#maxDelayMs = options.reconnect?.maxDelayMs ?? 10_000;
    this.#transports = options.transports?.length ? [...options.transports] : [httpFeed()];
    this.#transportRetryMs = options.transportRetryMs ?? 30_000;
    this.#heartbeatMs = Math.min(
      HEARTBEAT_MS.default,
      Math.max(HEARTBEAT_MS.min, Math.floor(options.maxStalenessMs / 4)),
    );
    this.#environment = Object.freeze({
      serverUrl: options.serverUrl,
      authorization: options.authorization,
      fetch: options.fetch,
      guardId: options.guardId,
      heartbeatMs: this.#heartbeatMs,
      idleTimeoutMs: options.idleTimeoutMs,
      maxEventChars: options.maxEventChars,
    });
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

  /** How many times the stream was reopened after a failure, a reset or a change of transport. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** The name of the transport in use (or last used), e.g. `http` or `redis`. */
  get transport(): string {
    return this.#transports[this.#current]!.name;
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
    await Promise.all([this.#loop, this.#receipts, this.#probing]);
  }

  async #run(): Promise<void> {
    let attempt = 0;
    const signal = this.#closing.signal;
    while (!signal.aborted) {
      let during: 'snapshot' | 'stream' = 'snapshot';
      let failed = false;
      let used = this.#current;
      try {
        if (this.#needSnapshot) await this.#loadSnapshot();
        during = 'stream';
        // A switch requested before this point is already in `#current`.
        this.#switchRequested = false;
        used = this.#current;
        await this.#follow(this.#transports[used]!);
      } catch (error) {
        if (signal.aborted) break;
        this.#fail(error instanceof GuardError ? error : toGuardError(error), during);
        failed = true;
      }
      if (signal.aborted) break;
      if (this.#wasLive) attempt = 0;
      this.#wasLive = false;
      let delayMs: number;
      if (this.#switchRequested) {
        // A probe found a preferred transport working again.
        delayMs = 0;
      } else if (
        failed &&
        during === 'stream' &&
        this.#current === used &&
        used + 1 < this.#transports.length
      ) {
        // The live transport failed: fall back at once, and probe the preferred ones from now on.
        this.#current = used + 1;
        this.#probing ??= this.#probePreferred();
        delayMs = 0;
      } else {
        // The first reset after a live connection reloads at once; repeated ones back off like failures.
        delayMs =
          this.#resetRequested && attempt === 0
            ? 0
            : backoffDelayMs(attempt, this.#initialDelayMs, this.#maxDelayMs, this.#random);
        attempt += 1;
      }
      this.#switchRequested = false;
      this.#resetRequested = false;
      this.#reconnects += 1;
      emit(() => ({ type: 'disconnected', cursor: this.#index.cursor, retryInMs: delayMs }));
      if (delayMs > 0) {
        const wake = new AbortController();
        this.#wake = wake;
        try {
          await sleep(delayMs, undefined, { signal: AbortSignal.any([signal, wake.signal]) });
        } catch {
          if (signal.aborted) break;
        } finally {
          this.#wake = undefined;
        }
      }
    }
  }

  /**
   * While the follower runs on a fallback transport, probes the preferred ones (those before it) every
   * `transportRetryMs` and switches back to the first that answers; ends once back on the first transport.
   */
  async #probePreferred(): Promise<void> {
    const signal = this.#closing.signal;
    try {
      while (this.#current > 0 && !signal.aborted) {
        await sleep(this.#transportRetryMs, undefined, { signal });
        for (let candidate = 0; candidate < this.#current; candidate++) {
          const transport = this.#transports[candidate]!;
          const works =
            transport.probe === undefined ||
            (await Promise.resolve()
              .then(() => transport.probe?.({ ...this.#environment, after: this.#index.cursor, signal }))
              .catch(() => false)) === true;
          if (signal.aborted) return;
          if (works && candidate < this.#current) {
            this.#current = candidate;
            this.#switchRequested = true;
            this.#connection?.abort();
            this.#wake?.abort();
            break;
          }
        }
      }
    } catch {
      // Closed while sleeping.
    } finally {
      this.#probing = undefined;
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

  /** Follows the log through one connection of `transport`, until it fails, resets, or is switched away from. */
  async #follow(transport: FeedTransport): Promise<void> {
    const after = this.#index.cursor;
    const ended = new AbortController();
    this.#connection = ended;
    const signal = AbortSignal.any([this.#closing.signal, ended.signal]);
    const connection: FeedConnection = {
      ...this.#environment,
      after,
      signal,
      connected: () => {
        if (signal.aborted) return;
        this.#connected = true;
        // A new connection is a new registration on the server: report on its first heartbeat.
        this.#lastReportMs = undefined;
        this.#receiptRefusedMs = undefined;
        emit(() => ({ type: 'connected', after, feed: transport.name }));
      },
      entries: (entries) => {
        if (!signal.aborted) this.#onEntries(entries);
      },
      heartbeat: (frame) => {
        if (!signal.aborted) this.#onHeartbeat(frame, ended);
      },
      reset: (reason, cursor) => {
        if (signal.aborted) return;
        this.#requestSnapshot(reason, cursor);
        ended.abort();
      },
    };
    try {
      await transport.follow(connection);
      if (!signal.aborted) {
        throw new GuardError('REVOKD_GUARD_FEED', `the ${transport.name} feed ended without a reason`);
      }
    } catch (error) {
      // A connection ended on purpose (reset, switch, close) does not count as a failure.
      if (!signal.aborted) throw error;
    } finally {
      ended.abort();
      this.#connection = undefined;
      this.#connected = false;
      this.#live = false;
    }
  }

  #onEntries(entries: readonly LogEntry[]): void {
    const before = this.#index.cursor;
    this.#index.apply(entries);
    if (this.#index.cursor !== before) this.#report();
  }

  #onHeartbeat(heartbeat: HeartbeatFrame, connection: AbortController): void {
    if (heartbeat.cursor < this.#index.cursor) {
      // The server claims less than we hold: its log is not the one we followed.
      this.#requestSnapshot('heartbeat_behind', heartbeat.cursor);
      connection.abort();
      return;
    }
    const nowMs = this.#options.now();
    this.#serverCursor = heartbeat.cursor;
    this.#clockOffsetMs = heartbeat.serverTimeMs - nowMs;
    this.#lastConfirmedMs = nowMs;
    // A server that does not know this guard's connection is asked again only every RECEIPT_REFRESH_MS.
    const refusedRecently =
      this.#receiptRefusedMs !== undefined && nowMs - this.#receiptRefusedMs < RECEIPT_REFRESH_MS;
    if (
      !refusedRecently &&
      (this.#reportedCursor !== this.#index.cursor ||
        this.#lastReportMs === undefined ||
        nowMs - this.#lastReportMs >= RECEIPT_REFRESH_MS)
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
  }

  /**
   * Schedules a receipt of the applied cursor. Never blocks the caller: one request is in flight at a time,
   * frames applied meanwhile are covered by the next one, and a failed receipt is not retried until the next
   * batch or heartbeat (a receipt refused as unknown, on heartbeats, not before `RECEIPT_REFRESH_MS`).
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
      // 404: the server has no connection of this guard (it follows another transport, e.g. Redis).
      this.#receiptRefusedMs = response.status === 404 ? this.#options.now() : undefined;
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
