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
  /** Cluster view only: the node it streams from, or else the node that received its last receipt. */
  readonly node?: string | undefined;
  /** Cluster view only: `http` while it has a stream open on a node; undefined when it has none (Redis, …). */
  readonly feed?: 'http' | undefined;
  /** Cluster view only: its last report of any kind (receipt, stream opened or still open), ms since the epoch. */
  readonly lastSeenAtMs?: number | undefined;
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
  /**
   * Cluster mode only: `cluster` when the guards are every node's, `node` when the shared registry could not be
   * read and only the guards this process knows were counted. Undefined in embedded mode (always this process).
   */
  readonly scope?: 'node' | 'cluster' | undefined;
}

export type ReceiptOutcome =
  /** Recorded. */
  | 'recorded'
  /**
   * Nothing recorded: no stream of this guard (for this client) is open on this process, or (cluster mode) the
   * guard id is held by another client's guard.
   */
  | 'unknown_guard'
  /** The cursor is beyond the end of the log: nothing recorded. */
  | 'cursor_ahead';

export interface GuardRegistryOptions {
  readonly clock: Clock;
  readonly revocation: Pick<RevocationService, 'onApplied' | 'index' | 'catchUp'>;
  /** Commit times remembered, for lag and time-to-enforce, in log entries. Default 10000. */
  readonly maxCommitTimes?: number;
  /**
   * Cluster mode: a receipt from a guard with no stream open here registers it too (it follows Redis, or streams
   * from another node), and such a guard is dropped once it has not reported for this long, in milliseconds.
   * Default: undefined, the embedded behaviour: only guards with a stream open here are known, and receipts from
   * any other are refused.
   */
  readonly receiptTtlMs?: number;
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
  /** Its last report or stream registration (receipt TTL). */
  lastSeenMs: number;
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
 * one closes). In-memory and per process. In cluster mode (`receiptTtlMs`) it also lists the guards that sent a
 * receipt here within the TTL; the cluster-wide view is `ClusterGuardDirectory`'s, which falls back to this one.
 */
export class GuardRegistry {
  readonly #clock: Clock;
  readonly #revocation: GuardRegistryOptions['revocation'];
  readonly #guards = new Map<string, GuardRecord>();
  readonly #commits: CommitTimes;
  readonly #waiters = new Set<Waiter>();
  readonly #enforcedListeners = new Set<EnforcedListener>();
  readonly #unsubscribe: () => void;
  readonly #receiptTtlMs: number | undefined;

  constructor(options: GuardRegistryOptions) {
    this.#clock = options.clock;
    this.#receiptTtlMs = options.receiptTtlMs;
    this.#revocation = options.revocation;
    this.#commits = new CommitTimes(options.maxCommitTimes ?? 10_000);
    // Entries are applied here right after their commit (or, when another process wrote them, when read).
    this.#unsubscribe = options.revocation.onApplied((entries) => this.#recordCommits(entries));
  }

  /** Guards connected now. */
  get size(): number {
    return this.#live().length;
  }

  /**
   * Registers a stream of `guardId`, which resumes from `cursor`. Returns the function to call when the stream
   * closes, or undefined when another client's guard holds this id.
   */
  connect(guardId: string, clientId: string, cursor: number): (() => void) | undefined {
    const nowMs = this.#clock.nowMs();
    let record = this.#known(guardId, nowMs);
    if (record && record.clientId !== clientId) return undefined;
    if (record) {
      record.streams += 1;
      record.lastSeenMs = nowMs;
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
        lastSeenMs: nowMs,
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
    if (await this.isAhead(cursor)) return 'cursor_ahead';
    return this.acknowledge(guardId, clientId, cursor);
  }

  /** Whether `cursor` is beyond the end of the log (after catching up: another node may have written it). */
  async isAhead(cursor: number): Promise<boolean> {
    if (cursor > this.#revocation.index.cursor) await this.#revocation.catchUp();
    return cursor > this.#revocation.index.cursor;
  }

  /**
   * Records a receipt whose cursor is known to be within the log (see {@link receipt}). `clusterCursor` is the
   * cursor the cluster had recorded for the guard before this receipt: time-to-enforce is observed only past it,
   * so a rule is observed once per guard across nodes, by the node that received the receipt covering it.
   */
  acknowledge(guardId: string, clientId: string, cursor: number, clusterCursor?: number): ReceiptOutcome {
    const nowMs = this.#clock.nowMs();
    let record = this.#known(guardId, nowMs);
    if (record && record.clientId !== clientId) return 'unknown_guard';
    if (!record) {
      if (this.#receiptTtlMs === undefined) return 'unknown_guard';
      // Its first receipt here: what it covered before is unknown, so nothing is observed up to this cursor.
      record = {
        guardId,
        clientId,
        cursor,
        observedThrough: clusterCursor ?? cursor,
        connectedAtMs: nowMs,
        lastReportAtMs: undefined,
        lastSeenMs: nowMs,
        streams: 0,
      };
      this.#guards.set(guardId, record);
    }
    record.lastReportAtMs = nowMs;
    record.lastSeenMs = nowMs;
    if (cursor > record.cursor) record.cursor = cursor;
    if (clusterCursor !== undefined && clusterCursor > record.observedThrough) {
      record.observedThrough = Math.min(clusterCursor, record.cursor);
    }
    this.#advance(record, record.cursor, nowMs);
    return 'recorded';
  }

  /** The client whose guard holds `guardId` here, if any. */
  holder(guardId: string): string | undefined {
    return this.#known(guardId, this.#clock.nowMs())?.clientId;
  }

  /** How many streams of `guardId` are open on this process. */
  streams(guardId: string): number {
    return this.#guards.get(guardId)?.streams ?? 0;
  }

  /** The guards with a stream open on this process, and the cursor each holds. */
  streaming(): Array<{ guardId: string; clientId: string; cursor: number }> {
    const open: Array<{ guardId: string; clientId: string; cursor: number }> = [];
    for (const { guardId, clientId, cursor, streams } of this.#guards.values()) {
      if (streams > 0) open.push({ guardId, clientId, cursor });
    }
    return open;
  }

  /**
   * How far a guard holding `cursor` is behind this process: in log positions, and the age in milliseconds of the
   * oldest entry it has not applied (0 when caught up; undefined when that commit time is not known here).
   */
  lag(cursor: number, nowMs = this.#clock.nowMs()): { entries: number; ms: number | undefined } {
    const entries = Math.max(0, this.#revocation.index.cursor - cursor);
    if (entries === 0) return { entries, ms: 0 };
    const oldestUnapplied = this.#commits.firstAfter(cursor);
    return { entries, ms: oldestUnapplied === undefined ? undefined : Math.max(0, nowMs - oldestUnapplied) };
  }

  /**
   * Waits until every guard connected now has acknowledged a cursor ≥ `cursor`, or `timeoutMs` passes. A guard
   * that disconnects stays pending (it counts if it comes back and acknowledges); one that connects later is
   * not waited for. `timeoutMs` 0 answers at once with who enforces the cursor already.
   */
  waitForCursor(cursor: number, timeoutMs: number): Promise<Enforcement> {
    const enforcedBy: string[] = [];
    const pending = new Set<string>();
    for (const record of this.#live()) {
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
    return this.#live(nowMs)
      .sort((a, b) => (a.guardId < b.guardId ? -1 : a.guardId > b.guardId ? 1 : 0))
      .map((record) => this.#status(record, nowMs));
  }

  /** The largest lag of any connected guard, in log positions and in milliseconds (0 with no guard). */
  maxLag(): { entries: number; ms: number } {
    const nowMs = this.#clock.nowMs();
    let entries = 0;
    let ms = 0;
    for (const record of this.#live(nowMs)) {
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

  /** The record of `guardId` if it is connected (a stream open here, or a receipt within the TTL). */
  #known(guardId: string, nowMs: number): GuardRecord | undefined {
    const record = this.#guards.get(guardId);
    if (record === undefined || this.#isLive(record, nowMs)) return record;
    this.#guards.delete(guardId);
    return undefined;
  }

  /** The connected guards; forgets those whose receipts stopped (cluster mode). */
  #live(nowMs = this.#clock.nowMs()): GuardRecord[] {
    const live: GuardRecord[] = [];
    for (const record of this.#guards.values()) {
      if (this.#isLive(record, nowMs)) live.push(record);
      else this.#guards.delete(record.guardId);
    }
    return live;
  }

  #isLive(record: GuardRecord, nowMs: number): boolean {
    return (
      record.streams > 0 ||
      this.#receiptTtlMs === undefined ||
      nowMs - record.lastSeenMs <= this.#receiptTtlMs
    );
  }

  #status(record: GuardRecord, nowMs: number): GuardStatus {
    const lag = this.lag(record.cursor, nowMs);
    return {
      guardId: record.guardId,
      clientId: record.clientId,
      cursor: record.cursor,
      lagEntries: lag.entries,
      lagMs: lag.ms,
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
