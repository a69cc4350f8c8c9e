import type { AuditEvent, Store } from '../store/port.ts';

/**
 * Tuning of an {@link AuditTrail}. The defaults bound what a crash can lose to about `maxDelayMs` of audit.
 */
export interface AuditTrailOptions {
  /** Longest an event waits before it is handed to the store, in milliseconds. Default 10. */
  readonly maxDelayMs?: number;
  /** Most events handed to the store in one write; a full batch is handed over at once. Default 500. */
  readonly maxBatch?: number;
  /**
   * Most events held at once (waiting, or handed to the store and not yet committed). When the store falls that
   * far behind, new events are dropped and counted instead of growing memory without bound. Default 50,000.
   */
  readonly maxPending?: number;
}

/** Events that will never reach the store, and why. */
export interface AuditLoss {
  /** `write_failed`: the store rejected the write; `queue_full`: over `maxPending`; `closed`: recorded after close. */
  readonly reason: 'write_failed' | 'queue_full' | 'closed';
  readonly events: number;
  /** The store's error, for `write_failed`. */
  readonly error?: unknown;
}

export interface AuditTrailStats {
  /** Events accepted by {@link AuditTrail.record} (lost ones included). */
  readonly recorded: number;
  /** Events the store has committed. */
  readonly written: number;
  /** Events that will never be written: failed writes, a full queue, records after close. */
  readonly lost: number;
  /** Events waiting or being written. */
  readonly pending: number;
}

const DEFAULTS = { maxDelayMs: 10, maxBatch: 500, maxPending: 50_000 } as const;

/**
 * The audit events of operations whose only write is the audit record — client-credentials issuance and
 * introspection — written after the answer. {@link record} returns at once; the events are handed to the store
 * (its group commit, for SQLite) within `maxDelayMs`, many requests sharing one durable write, so these
 * operations never wait for an fsync. The trade-off, chosen on purpose: a crash can lose the last few
 * milliseconds of *these* audit events. Everything that changes what a token may do — a revocation rule, a
 * refresh rotation, an allowlist entry, and the audit events written with them — stays durable before its answer.
 *
 * A failing store never fails the request that recorded the event: the loss is counted ({@link stats}) and
 * reported to {@link onLoss} listeners (the server logs it). {@link flush} waits for what was recorded so far;
 * {@link close} flushes and refuses later events (the runtime calls it before closing the store).
 */
export class AuditTrail {
  readonly #store: Pick<Store, 'appendAudit'>;
  readonly #maxDelayMs: number;
  readonly #maxBatch: number;
  readonly #maxPending: number;
  readonly #lossListeners = new Set<(loss: AuditLoss) => void>();
  /** Writes handed to the store and not yet settled; each settles without rejecting. */
  readonly #writes = new Set<Promise<void>>();
  #queue: AuditEvent[] = [];
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #recorded = 0;
  #written = 0;
  #lost = 0;

  constructor(store: Pick<Store, 'appendAudit'>, options: AuditTrailOptions = {}) {
    this.#store = store;
    this.#maxDelayMs = options.maxDelayMs ?? DEFAULTS.maxDelayMs;
    this.#maxBatch = Math.max(1, options.maxBatch ?? DEFAULTS.maxBatch);
    this.#maxPending = Math.max(1, options.maxPending ?? DEFAULTS.maxPending);
  }

  /** Queues events for the store and returns at once; never throws for a store failure. */
  record(events: readonly AuditEvent[]): void {
    if (events.length === 0) return;
    this.#recorded += events.length;
    if (this.#closed) {
      this.#lose({ reason: 'closed', events: events.length });
      return;
    }
    if (this.#queue.length + this.#inFlight + events.length > this.#maxPending) {
      this.#lose({ reason: 'queue_full', events: events.length });
      return;
    }
    for (const event of events) this.#queue.push(event);
    if (this.#queue.length >= this.#maxBatch) this.#handOver();
    else this.#timer ??= setTimeout(() => this.#handOver(), this.#maxDelayMs).unref();
  }

  /** Resolves once every event recorded before the call is committed or counted as lost. Never rejects. */
  async flush(): Promise<void> {
    this.#handOver();
    await Promise.all([...this.#writes]);
  }

  /** Flushes, then refuses (and counts as lost) every later event. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  /**
   * Subscribes to losses: called synchronously with each batch that will never be written. Returns the
   * unsubscribe function. A throwing listener does not disturb the others.
   */
  onLoss(listener: (loss: AuditLoss) => void): () => void {
    this.#lossListeners.add(listener);
    return () => {
      this.#lossListeners.delete(listener);
    };
  }

  get stats(): AuditTrailStats {
    return {
      recorded: this.#recorded,
      written: this.#written,
      lost: this.#lost,
      pending: this.#queue.length + this.#inFlight,
    };
  }

  /** Hands everything queued to the store, in batches of at most `maxBatch`, in order. */
  #handOver(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#queue.length > 0) {
      const batch = this.#queue.length <= this.#maxBatch ? this.#queue : this.#queue.slice(0, this.#maxBatch);
      this.#queue = batch === this.#queue ? [] : this.#queue.slice(batch.length);
      this.#write(batch);
    }
  }

  #write(batch: AuditEvent[]): void {
    this.#inFlight += batch.length;
    let appended: Promise<void>;
    try {
      appended = this.#store.appendAudit(batch);
    } catch (error) {
      appended = Promise.reject(error);
    }
    const settled = (): void => {
      this.#inFlight -= batch.length;
      this.#writes.delete(write);
    };
    const write: Promise<void> = appended.then(
      () => {
        settled();
        this.#written += batch.length;
      },
      (error: unknown) => {
        settled();
        this.#lose({ reason: 'write_failed', events: batch.length, error });
      },
    );
    this.#writes.add(write);
  }

  #lose(loss: AuditLoss): void {
    this.#lost += loss.events;
    for (const listener of this.#lossListeners) {
      try {
        listener(loss);
      } catch {
        // A listener's failure (a logger) must not turn a lost audit event into a failed request.
      }
    }
  }
}
