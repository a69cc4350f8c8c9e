import type { ServerResponse } from 'node:http';
import {
  encodeEntriesFrame,
  encodeHeartbeatFrame,
  encodeResetFrame,
  FEED_PATHS,
  GUARD_ID_PATTERN,
  HEARTBEAT_MS,
  type LogEntry,
} from '@revokd/guard';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { OAuthError } from '../../core/errors.ts';
import type { Runtime } from '../../runtime.ts';
import type { HttpContext } from '../app.ts';
import { authorizeFeedReader } from './feed.ts';

export interface StreamRouteOptions {
  /** Period of heartbeat events, in milliseconds. Default 5000. */
  readonly heartbeatMs?: number;
  /** Entries read from the store per backlog page. Default 1000. */
  readonly pageSize?: number;
  /** A subscriber with more unsent bytes than this is disconnected (it resumes from its cursor). Default 8 MiB. */
  readonly maxBufferedBytes?: number;
  /** Live entries held while the backlog is being sent; more disconnects the subscriber. Default 100000. */
  readonly maxPendingEntries?: number;
}

const cursor = z
  .string()
  .regex(/^[0-9]{1,16}$/)
  .transform(Number)
  .refine(Number.isSafeInteger);
const streamQuery = z.strictObject({
  after: cursor.optional(),
  /** The guard's id: it is registered (listed, waited for) while the stream is open, and sends receipts. */
  guard_id: z.string().regex(GUARD_ID_PATTERN).optional(),
  /** Heartbeat period the guard asks for (its staleness bound is a few of them). */
  heartbeat_ms: z
    .string()
    .regex(/^[0-9]{1,6}$/)
    .transform(Number)
    .refine((ms) => ms >= HEARTBEAT_MS.min && ms <= HEARTBEAT_MS.max)
    .optional(),
});

/**
 * `GET /revocations/stream?after=N`: the revocation log as Server-Sent Events, for guards. Sends every entry
 * after `N` (the `Last-Event-ID` header stands in for `after`, so a plain EventSource resumes too), then each
 * entry as this process applies it, and a heartbeat with the cursor and server time once the backlog is sent
 * and every few seconds. Frames are the guard's wire format (`@revokd/guard`, `STREAM_EVENTS`). A cursor beyond
 * the end of the log (the log was replaced) is answered with a `reset` event. Callers authenticate like the
 * other feed endpoints: client credentials of a client allowed to introspect. A guard that names itself with
 * `guard_id` is registered in `runtime.guardDirectory` while its stream is open (it reports receipts; in cluster
 * mode every node lists it); `heartbeat_ms` sets this stream's heartbeat period.
 */
export function streamRoutes(
  app: FastifyInstance,
  { runtime }: HttpContext,
  options: StreamRouteOptions = {},
): void {
  const settings: Required<StreamRouteOptions> = {
    heartbeatMs: options.heartbeatMs ?? 5000,
    pageSize: options.pageSize ?? 1000,
    maxBufferedBytes: options.maxBufferedBytes ?? 8 * 1024 * 1024,
    maxPendingEntries: options.maxPendingEntries ?? 100_000,
  };
  const open = new Set<FeedStream>();
  // Open streams would keep `app.close()` waiting for ever: end them first (guards reconnect elsewhere).
  // Revocations waiting for guards to enforce them answer now: no receipt can arrive any more.
  app.addHook('preClose', (done) => {
    for (const stream of open) stream.close();
    runtime.guardDirectory.releaseWaiters();
    done();
  });

  app.get(FEED_PATHS.stream, async (request, reply) => {
    const client = await authorizeFeedReader(runtime, request);
    const { after, guardId, heartbeatMs } = readQuery(request);
    const { revocation } = runtime;
    // A cursor beyond this process's index may be in the store already (written by the CLI or another node).
    if (after > revocation.index.cursor) await revocation.catchUp();
    const ahead = after > revocation.index.cursor;
    const release =
      guardId === undefined || ahead
        ? undefined
        : await runtime.guardDirectory.open(guardId, client.id, after);
    if (guardId !== undefined && !ahead && release === undefined) {
      throw new OAuthError('invalid_request', 'guard_id is in use by a guard of another client');
    }
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    if (ahead) {
      raw.end(encodeResetFrame({ reason: 'cursor_ahead', cursor: revocation.index.cursor }));
      return reply;
    }
    raw.flushHeaders();
    const streamSettings = heartbeatMs === undefined ? settings : { ...settings, heartbeatMs };
    const stream = new FeedStream(raw, after, runtime, streamSettings, () => {
      open.delete(stream);
      release?.();
    });
    open.add(stream);
    void stream.run();
    return reply;
  });
}

function readQuery(request: FastifyRequest): {
  after: number;
  guardId: string | undefined;
  heartbeatMs: number | undefined;
} {
  const parsed = streamQuery.safeParse(request.query);
  if (!parsed.success) {
    throw new OAuthError(
      'invalid_request',
      `after must be a cursor (a non-negative integer), guard_id 1-128 printable ASCII characters, heartbeat_ms ${HEARTBEAT_MS.min}-${HEARTBEAT_MS.max}`,
    );
  }
  const { guard_id: guardId, heartbeat_ms: heartbeatMs } = parsed.data;
  if (parsed.data.after !== undefined) return { after: parsed.data.after, guardId, heartbeatMs };
  const lastEventId = cursor.safeParse(request.headers['last-event-id']);
  if (lastEventId.success) return { after: lastEventId.data, guardId, heartbeatMs };
  throw new OAuthError('invalid_request', 'after (a cursor) is required');
}

/** One subscriber: sends the backlog after its cursor, then live entries and heartbeats, until it goes away. */
class FeedStream {
  readonly #raw: ServerResponse;
  readonly #runtime: Runtime;
  readonly #settings: Required<StreamRouteOptions>;
  readonly #onClose: () => void;
  #lastSent: number;
  #live = false;
  #pending: LogEntry[] = [];
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(
    raw: ServerResponse,
    after: number,
    runtime: Runtime,
    settings: Required<StreamRouteOptions>,
    onClose: () => void,
  ) {
    this.#raw = raw;
    this.#lastSent = after;
    this.#runtime = runtime;
    this.#settings = settings;
    this.#onClose = onClose;
    raw.on('close', () => this.close());
    raw.on('error', () => this.close());
  }

  async run(): Promise<void> {
    const { store, revocation } = this.#runtime;
    // The subscriber may have gone while it was being authenticated, before `close` was listened to.
    if (this.#raw.destroyed || this.#raw.socket === null || this.#raw.socket.destroyed) {
      this.close();
      return;
    }
    // Subscribe before reading the backlog: an entry applied from now on is either in a page read below or
    // arrives here; duplicates are dropped by cursor.
    this.#unsubscribe = revocation.onApplied((entries) => this.#onApplied(entries));
    try {
      for (;;) {
        const page = await store.readLog(this.#lastSent, this.#settings.pageSize);
        if (this.#closed) return;
        if (page.length > 0 && !this.#send(page)) await this.#drained();
        if (this.#closed || page.length < this.#settings.pageSize) break;
      }
      if (this.#closed) return;
      this.#live = true;
      const pending = this.#pending;
      this.#pending = [];
      this.#send(pending);
      this.#heartbeat();
      this.#timer = setInterval(() => this.#heartbeat(), this.#settings.heartbeatMs);
      this.#timer.unref();
    } catch {
      // The store failed: drop the subscriber, which resumes from its cursor.
      this.close();
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    clearInterval(this.#timer);
    this.#pending = [];
    this.#onClose();
    if (!this.#raw.writableEnded) this.#raw.end();
  }

  #onApplied(entries: readonly LogEntry[]): void {
    if (this.#closed) return;
    if (this.#live) {
      this.#send(entries);
      return;
    }
    for (const entry of entries) this.#pending.push(entry);
    if (this.#pending.length > this.#settings.maxPendingEntries) this.close();
  }

  /** Writes the entries after the last one sent; false when the socket buffer is full. */
  #send(entries: readonly LogEntry[]): boolean {
    const fresh = entries.filter((entry) => entry.cursor > this.#lastSent);
    const last = fresh.at(-1);
    if (last === undefined) return true;
    this.#lastSent = last.cursor;
    return this.#write(encodeEntriesFrame(fresh));
  }

  #heartbeat(): void {
    const { revocation, clock } = this.#runtime;
    // Every entry this process has applied has been sent (or was pruned as expired before it could be).
    this.#write(
      encodeHeartbeatFrame({
        cursor: Math.max(this.#lastSent, revocation.index.cursor),
        serverTimeMs: clock.nowMs(),
      }),
    );
  }

  #write(text: string): boolean {
    if (this.#closed) return false;
    const flushed = this.#raw.write(text);
    // A subscriber that does not keep up is dropped rather than buffered without bound.
    if (!flushed && this.#live && this.#raw.writableLength > this.#settings.maxBufferedBytes) this.close();
    return flushed;
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#raw.off('drain', done);
        this.#raw.off('close', done);
        resolve();
      };
      this.#raw.on('drain', done);
      this.#raw.on('close', done);
    });
  }
}
