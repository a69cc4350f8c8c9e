import type { LogEntry, RuleKind } from '@revokd/guard';
import type { Clock } from '../core/clock.ts';
import type { RevocationService } from './revocation.ts';

/** What one connected guard has told this process. */
export interface GuardStatus {
  readonly guardId: string;
  /** The client the guard authenticated as. */
  readonly clientId: string;
  /** The cursor the guard has applied: its latest receipt, or the cursor its open stream resumed from. */
  readonly cursor: number;
  /** This process's cursor minus the guard's: how many log positions it has not applied. */
  readonly lagEntries: number;
  /**
   * Milliseconds since the oldest entry the guard has not applied was committed (as this process saw it);
   * 0 when caught up; undefined when that commit time is no longer (or was never) known here.
   */
  readonly lagMs: number | undefined;
  /** When its first open stream was opened, ms since the epoch. */
  readonly connectedAtMs: number;
  /** When its last receipt arrived, ms since the epoch; undefined before the first. */
  readonly lastReportAtMs: number | undefined;
  /** Streams it has open on this process (more than one only while a dropped one is noticed). */
  readonly streams: number;
}

/** Which guards enforce a cursor: the answer of {@link GuardRegistry.waitForCursor}. */
export interface Enforcement {
  readonly cursor: number;
  /** Guards that have acknowledged a cursor ≥ `cursor`, in the order they did. */
  readonly enforcedBy: readonly string[];
  /** Guards connected when the wait began that had not acknowledged it when the wait ended, sorted. */
  readonly pending: readonly string[];
  /** The wait ended with guards still pending (timeout, `wait_ms` 0, or shutdown). */
  readonly timedOut: boolean;
}

export type ReceiptOutcome =
  /** Recorded. */
  | 'recorded'
  /** No stream of this guard (for this client) is open on this process: nothing recorded. */
  | 'unknown_guard'
  /** The cursor is beyond the end of the log: nothing recorded. */
  | 'cursor_ahead';

export interface GuardRegistryOptions {
  readonly clock: Clock;
  readonly revocation: Pick<RevocationService, 'onApplied' | 'index' | 'catchUp'>;
  /** Commit times remembered, for lag and time-to-enforce, in log entries. Default 10000. */
  readonly maxCommitTimes?: number;
}

/** `(rule kind, milliseconds from its commit to a guard's receipt covering it)`. */
export type EnforcedListener = (kind: RuleKind, delayMs: number) => void;

interface GuardRecord {
  readonly guardId: string;
  readonly clientId: string;
  cursor: number;
  /** Highest cursor for which time-to-enforce has been observed for this guard. */
  observedThrough: number;
  readonly connectedAtMs: number;
  lastReportAtMs: number | undefined;
  streams: number;
}

interface Waiter {
  readonly cursor: number;
  readonly enforcedBy: string[];
  readonly pending: Set<string>;
  finish(timedOut: boolean): void;
}

/**
 * The guards connected to this process's revocation stream and the cursor each has applied, as reported by
 * their receipts (DESIGN.md, Propagation: "the server can tell, for any revocation, which guards enforce it").
 * A guard is listed while it has a stream open here (registered when the stream opens, dropped when the last
 * one closes). In-memory and per process: with several server nodes, each knows the guards streaming from it.
 */
export class GuardRegistry {
  readonly #clock: Clock;
  readonly #revocation: GuardRegistryOptions['revocation'];
  readonly #guards = new Map<string, GuardRecord>();
  readonly #commits: CommitTimes;
  readonly #waiters = new Set<Waiter>();
  readonly #enforcedListeners = new Set<EnforcedListener>();
  readonly #unsubscribe: () => void;

  constructor(options: GuardRegistryOptions) {
    this.#clock = options.clock;
    this.#revocation = options.revocation;
    this.#commits = new CommitTimes(options.maxCommitTimes ?? 10_000);
    // Entries are applied here right after their commit (or, when another process wrote them, when read).
    this.#unsubscribe = options.revocation.onApplied((entries) => this.#recordCommits(entries));
  }

  /** Guards connected now. */
  get size(): number {
    return this.#guards.size;
  }

  /**
   * Registers a stream of `guardId`, which resumes from `cursor`. Returns the function to call when the stream
   * closes, or undefined when another client's guard holds this id.
   */
  connect(guardId: string, clientId: string, cursor: number): (() => void) | undefined {
    const nowMs = this.#clock.nowMs();
    let record = this.#guards.get(guardId);
    if (record && record.clientId !== clientId) return undefined;
    if (record) {
      record.streams += 1;
      // The new stream's cursor is what the guard holds now (it may have reloaded a snapshot).
      record.cursor = cursor;
    } else {
      record = {
        guardId,
        clientId,
        cursor,
        observedThrough: cursor,
        connectedAtMs: nowMs,
        lastReportAtMs: undefined,
        streams: 1,
      };
      this.#guards.set(guardId, record);
    }
    this.#advance(record, cursor, nowMs);
    const registered = record;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      registered.streams -= 1;
      if (registered.streams === 0 && this.#guards.get(guardId) === registered) this.#guards.delete(guardId);
    };
  }

  /** Records a receipt: the guard has applied every entry up to `cursor`. */
  async receipt(guardId: string, clientId: string, cursor: number): Promise<ReceiptOutcome> {
    // A cursor beyond this process's index may be in the store already (another node wrote it).
    if (cursor > this.#revocation.index.cursor) await this.#revocation.catchUp();
    if (cursor > this.#revocation.index.cursor) return 'cursor_ahead';
    const record = this.#guards.get(guardId);
    if (!record || record.clientId !== clientId) return 'unknown_guard';
    const nowMs = this.#clock.nowMs();
    record.lastReportAtMs = nowMs;
    if (cursor > record.cursor) record.cursor = cursor;
    this.#advance(record, record.cursor, nowMs);
    return 'recorded';
  }

  /**
   * Waits until every guard connected now has acknowledged a cursor ≥ `cursor`, or `timeoutMs` passes. A guard
   * that disconnects stays pending (it counts if it comes back and acknowledges); one that connects later is
   * not waited for. `timeoutMs` 0 answers at once with who enforces the cursor already.
   */
  waitForCursor(cursor: number, timeoutMs: number): Promise<Enforcement> {
    const enforcedBy: string[] = [];
    const pending = new Set<string>();
    for (const record of this.#guards.values()) {
      if (record.cursor >= cursor) enforcedBy.push(record.guardId);
      else pending.add(record.guardId);
    }
    const answer = (timedOut: boolean): Enforcement => ({
      cursor,
      enforcedBy: [...enforcedBy],
      pending: [...pending].sort(),
      timedOut,
    });
    if (pending.size === 0 || timeoutMs <= 0) return Promise.resolve(answer(pending.size > 0));
    return new Promise((resolve) => {
      const waiter: Waiter = {
        cursor,
        enforcedBy,
        pending,
        finish: (timedOut) => {
          if (!this.#waiters.delete(waiter)) return;
          clearTimeout(timer);
          resolve(answer(timedOut));
        },
      };
      const timer = setTimeout(() => waiter.finish(true), timeoutMs);
      timer.unref();
      this.#waiters.add(waiter);
    });
  }

  /** The connected guards, sorted by id, with their lag behind this process. */
  list(): GuardStatus[] {
    const nowMs = this.#clock.nowMs();
    return [...this.#guards.values()]
      .sort((a, b) => (a.guardId < b.guardId ? -1 : a.guardId > b.guardId ? 1 : 0))
      .map((record) => this.#status(record, nowMs));
  }

  /** The largest lag of any connected guard, in log positions and in milliseconds (0 with no guard). */
  maxLag(): { entries: number; ms: number } {
    const nowMs = this.#clock.nowMs();
    let entries = 0;
    let ms = 0;
    for (const record of this.#guards.values()) {
      const status = this.#status(record, nowMs);
      entries = Math.max(entries, status.lagEntries);
      ms = Math.max(ms, status.lagMs ?? 0);
    }
    return { entries, ms };
  }

  /**
   * Subscribes to time-to-enforce observations: one per (rule, guard), when a receipt (or a stream resuming
   * past it) first covers a rule whose commit time is still remembered. Returns the unsubscribe function.
   */
  onEnforced(listener: EnforcedListener): () => void {
    this.#enforcedListeners.add(listener);
    return () => {
      this.#enforcedListeners.delete(listener);
    };
  }

  /** Ends every wait now, with the guards still pending (the server is shutting down). */
  releaseWaiters(): void {
    for (const waiter of [...this.#waiters]) waiter.finish(true);
  }

  close(): void {
    this.#unsubscribe();
    this.releaseWaiters();
  }

  #status(record: GuardRecord, nowMs: number): GuardStatus {
    const serverCursor = this.#revocation.index.cursor;
    const lagEntries = Math.max(0, serverCursor - record.cursor);
    const oldestUnapplied = lagEntries === 0 ? undefined : this.#commits.firstAfter(record.cursor);
    return {
      guardId: record.guardId,
      clientId: record.clientId,
      cursor: record.cursor,
      lagEntries,
      lagMs:
        lagEntries === 0
          ? 0
          : oldestUnapplied === undefined
            ? undefined
            : Math.max(0, nowMs - oldestUnapplied),
      connectedAtMs: record.connectedAtMs,
      lastReportAtMs: record.lastReportAtMs,
      streams: record.streams,
    };
  }

  /** The guard now holds `cursor`: observe time-to-enforce for what it newly covers, and settle waits. */
  #advance(record: GuardRecord, cursor: number, nowMs: number): void {
    if (cursor > record.observedThrough) {
      if (this.#enforcedListeners.size > 0) {
        this.#commits.forEachIn(record.observedThrough, cursor, (atMs, kind) => {
          for (const listener of this.#enforcedListeners) listener(kind, Math.max(0, nowMs - atMs));
        });
      }
      record.observedThrough = cursor;
    }
    for (const waiter of this.#waiters) {
      if (cursor >= waiter.cursor && waiter.pending.delete(record.guardId)) {
        waiter.enforcedBy.push(record.guardId);
        if (waiter.pending.size === 0) waiter.finish(false);
      }
    }
  }

  #recordCommits(entries: readonly LogEntry[]): void {
    const nowMs = this.#clock.nowMs();
    for (const entry of entries) this.#commits.add(entry.cursor, nowMs, entry.rule.kind);
  }
}

/** Commit times of the most recent log entries, in cursor order, bounded in count. */
class CommitTimes {
  readonly #max: number;
  #cursors: number[] = [];
  #times: number[] = [];
  #kinds: RuleKind[] = [];
  #start = 0;

  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  add(cursor: number, atMs: number, kind: RuleKind): void {
    const last = this.#cursors.at(-1);
    if (last !== undefined && cursor <= last) return;
    this.#cursors.push(cursor);
    this.#times.push(atMs);
    this.#kinds.push(kind);
    if (this.#cursors.length - this.#start > this.#max) this.#start += 1;
    // Drop the forgotten prefix now and then rather than shifting on every add.
    if (this.#start >= this.#max) {
      this.#cursors = this.#cursors.slice(this.#start);
      this.#times = this.#times.slice(this.#start);
      this.#kinds = this.#kinds.slice(this.#start);
      this.#start = 0;
    }
  }

  /** Commit time of the first remembered entry after `cursor`. */
  firstAfter(cursor: number): number | undefined {
    const i = this.#indexAfter(cursor);
    return i < this.#cursors.length ? this.#times[i] : undefined;
  }

  /** Calls `fn` for each remembered entry with `after < cursor ≤ through`, in order. */
  forEachIn(after: number, through: number, fn: (atMs: number, kind: RuleKind) => void): void {
    for (let i = this.#indexAfter(after); i < this.#cursors.length && this.#cursors[i]! <= through; i++) {
      fn(this.#times[i]!, this.#kinds[i]!);
    }
  }

  /** Index of the first remembered cursor greater than `cursor`. */
  #indexAfter(cursor: number): number {
    let lo = this.#start;
    let hi = this.#cursors.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#cursors[mid]! <= cursor) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
