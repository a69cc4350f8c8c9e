import { performance } from 'node:perf_hooks';
import type { Clock } from '../core/clock.ts';
import type { GuardDirectory, GuardList, GuardOverview } from './guard-directory.ts';
import type { Enforcement, GuardRegistry, GuardStatus, ReceiptOutcome } from './guard-registry.ts';

/** One guard as the shared registry holds it. Times are the shared store's clock, ms since the epoch. */
export interface SharedGuard {
  readonly guardId: string;
  readonly clientId: string;
  /** The cursor it has applied: its latest receipt, or the cursor its latest stream resumed from. */
  readonly cursor: number;
  /** When it was registered (first report since it was last dropped). */
  readonly connectedAtMs: number;
  /** Its last report of any kind: a guard not seen within the TTL is no longer connected. */
  readonly lastSeenMs: number;
  /** Its last receipt; undefined before the first. */
  readonly lastReceiptMs: number | undefined;
  /** The node that received its last receipt. */
  readonly receiptNode: string | undefined;
  /** The node it has a stream open on, if any. */
  readonly streamNode: string | undefined;
}

/**
 * What a node heard from a guard: `stream`, a stream of it opened here, resuming from `cursor` (what the guard
 * holds now: it may have reloaded a snapshot); `receipt`, it has applied up to `cursor`; `refresh`, its stream here
 * is still open (`cursor` is only used if the shared registry had forgotten it).
 */
export interface SharedReport {
  readonly kind: 'stream' | 'receipt' | 'refresh';
  readonly guardId: string;
  readonly clientId: string;
  readonly cursor: number;
}

/**
 * Per report: `taken`, another client's connected guard holds the id (nothing recorded); else the cursor recorded
 * for the guard before (undefined when it was not connected).
 */
export type SharedReportResult =
  | { readonly taken: true }
  | { readonly taken: false; readonly previous: number | undefined };

/**
 * The registry the nodes of a cluster share (implemented on Redis: `feed/redis-guards.ts`). Each report is one
 * atomic conditional write, so two nodes never both bind one guard id to different clients.
 */
export interface SharedGuardStore {
  /** Records what `node` heard; with `prune`, also deletes the guards not seen within `ttlMs`. */
  report(
    node: string,
    reports: readonly SharedReport[],
    options: { readonly ttlMs: number; readonly prune: boolean },
  ): Promise<SharedReportResult[]>;
  /** The guard's stream on `node` closed: it is dropped, unless it has since opened one on another node. */
  forget(guardId: string, node: string): Promise<void>;
  /** The guards seen within `ttlMs`. */
  list(ttlMs: number): Promise<SharedGuard[]>;
  /**
   * Calls `listener` with each report that moved a guard's cursor, on any node, from the moment the returned
   * promise resolves until the function it resolves is called.
   */
  subscribe(listener: (guardId: string, cursor: number) => void): Promise<() => void>;
}

/** The pino methods the directory logs with. */
export interface DirectoryLogger {
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
}

/**
 * A guard is connected while it reports within this long: three periods of a caught-up guard's receipts (it
 * reports at least every 5 s), and of the nodes' refresh of the streams open on them.
 */
export const GUARD_TTL_MS = 15_000;

export interface ClusterGuardDirectoryOptions {
  /** This node's own registry (built with `receiptTtlMs` = `ttlMs`): kept up to date, and the fallback view. */
  readonly registry: GuardRegistry;
  readonly store: SharedGuardStore;
  /** This node's id, as listed (`node`). */
  readonly node: string;
  readonly clock: Clock;
  /** A guard that has not reported (and has no open stream) for this long drops out, in ms. Default 15000. */
  readonly ttlMs?: number;
  /** While a revocation waits, the shared registry is also re-read this often (a missed nudge), in ms. Default 1000. */
  readonly pollMs?: number;
  /** A shared-registry call unanswered this long counts as failed: this node's view is used, in ms. Default 1000. */
  readonly timeoutMs?: number;
  readonly logger?: DirectoryLogger;
}

interface Waiter {
  readonly cursor: number;
  readonly enforcedBy: string[];
  readonly pending: Set<string>;
  finish(timedOut: boolean): void;
}

/**
 * The guards of every node of a cluster (DESIGN.md, Propagation: "the server can tell, for any revocation, which
 * guards enforce it"), shared through a {@link SharedGuardStore}. A guard is connected while it has reported to any
 * node within the TTL: a receipt (from any client allowed to read the log: that is how a guard following Redis
 * registers), or a stream opened on a node, which that node refreshes while it stays open. Every report also goes
 * to this node's {@link GuardRegistry} (lag, time-to-enforce), which answers alone while the shared store fails:
 * a revocation is durable before anyone waits for guards, so waiting is best-effort and never fails it.
 *
 * A wait reads the shared registry once, then learns of receipts on any node from the store's nudges (subscribed
 * only while something waits), re-reading every `pollMs` in case one was missed.
 */
export class ClusterGuardDirectory implements GuardDirectory {
  readonly scope = 'cluster';
  readonly #registry: GuardRegistry;
  readonly #store: SharedGuardStore;
  readonly #node: string;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #pollMs: number;
  readonly #timeoutMs: number;
  readonly #logger: DirectoryLogger | undefined;
  readonly #waiters = new Set<Waiter>();
  readonly #calls = new Set<Promise<unknown>>();
  readonly #refresh: NodeJS.Timeout;
  #poll: NodeJS.Timeout | undefined;
  /** Waits that hold the subscription to nudges. */
  #watchers = 0;
  #subscription: Promise<(() => void) | undefined> | undefined;
  /** When the current subscription took effect (`performance.now()`); Infinity while there is none. */
  #subscribedAt = Number.POSITIVE_INFINITY;
  /** The highest cursor heard of each guard since the subscription took effect. */
  readonly #heardSince = new Map<string, number>();
  #listing: { readonly promise: Promise<SharedGuard[] | undefined>; readonly issuedAt: number } | undefined;
  #failing = false;
  #closed = false;

  constructor(options: ClusterGuardDirectoryOptions) {
    this.#registry = options.registry;
    this.#store = options.store;
    this.#node = options.node;
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? GUARD_TTL_MS;
    this.#pollMs = options.pollMs ?? 1000;
    this.#timeoutMs = options.timeoutMs ?? 1000;
    this.#logger = options.logger;
    // Streams open here keep their guards connected; the same call forgets the guards that stopped reporting.
    this.#refresh = setInterval(() => void this.#refreshStreams(), Math.max(1, Math.floor(this.#ttlMs / 3)));
    this.#refresh.unref();
  }

  async open(guardId: string, clientId: string, cursor: number): Promise<(() => void) | undefined> {
    const release = this.#registry.connect(guardId, clientId, cursor);
    if (release === undefined) return undefined;
    const [result] = (await this.#report([{ kind: 'stream', guardId, clientId, cursor }])) ?? [];
    if (result?.taken) {
      release();
      return undefined;
    }
    this.#heard(guardId, cursor);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
      // Gone at once, as in embedded mode, unless it has meanwhile opened a stream on another node.
      if (this.#registry.streams(guardId) === 0) {
        void this.#shared('forget', () => this.#store.forget(guardId, this.#node));
      }
    };
  }

  async receipt(guardId: string, clientId: string, cursor: number): Promise<ReceiptOutcome> {
    if (await this.#registry.isAhead(cursor)) return 'cursor_ahead';
    const holder = this.#registry.holder(guardId);
    if (holder !== undefined && holder !== clientId) return 'unknown_guard';
    const [result] = (await this.#report([{ kind: 'receipt', guardId, clientId, cursor }])) ?? [];
    if (result?.taken) return 'unknown_guard';
    const outcome = this.#registry.acknowledge(guardId, clientId, cursor, result?.previous);
    if (outcome === 'recorded') this.#heard(guardId, cursor);
    return outcome;
  }

  async waitForCursor(cursor: number, timeoutMs: number): Promise<Enforcement> {
    const started = performance.now();
    // While the shared store fails, do not wait for a subscription first: re-reads cover a wait that gets one.
    const watching = timeoutMs > 0 && !this.#failing;
    if (watching) await this.#watch();
    try {
      // A listing issued after the subscription took effect: a receipt after it is either in it or heard.
      const guards = await this.#list(watching ? this.#subscribedAt : Number.NEGATIVE_INFINITY);
      if (guards === undefined) {
        const left = Math.max(0, timeoutMs - (performance.now() - started));
        return { ...(await this.#registry.waitForCursor(cursor, left)), scope: 'node' };
      }
      const enforcedBy: string[] = [];
      const pending = new Set<string>();
      for (const guard of guards) {
        const heard = Math.max(guard.cursor, this.#heardSince.get(guard.guardId) ?? -1);
        if (heard >= cursor) enforcedBy.push(guard.guardId);
        else pending.add(guard.guardId);
      }
      const answer = (timedOut: boolean): Enforcement => ({
        cursor,
        enforcedBy: [...enforcedBy],
        pending: [...pending].sort(),
        timedOut,
        scope: 'cluster',
      });
      const left = timeoutMs - (performance.now() - started);
      if (pending.size === 0 || left <= 0 || this.#closed) return answer(pending.size > 0);
      return await new Promise<Enforcement>((resolve) => {
        const waiter: Waiter = {
          cursor,
          enforcedBy,
          pending,
          finish: (timedOut) => {
            if (!this.#waiters.delete(waiter)) return;
            clearTimeout(timer);
            if (this.#waiters.size === 0) this.#stopPolling();
            resolve(answer(timedOut));
          },
        };
        const timer = setTimeout(() => waiter.finish(true), left);
        timer.unref();
        this.#waiters.add(waiter);
        this.#startPolling();
      });
    } finally {
      if (watching) this.#unwatch();
    }
  }

  async list(): Promise<GuardList> {
    const guards = await this.#list();
    if (guards === undefined) return { scope: 'node', guards: this.#registry.list() };
    const nowMs = this.#clock.nowMs();
    return {
      scope: 'cluster',
      guards: guards
        .map((guard) => this.#status(guard, nowMs))
        .sort((a, b) => (a.guardId < b.guardId ? -1 : a.guardId > b.guardId ? 1 : 0)),
    };
  }

  async overview(): Promise<GuardOverview> {
    const guards = await this.#list();
    if (guards === undefined) return { connected: this.#registry.size, maxLag: this.#registry.maxLag() };
    const nowMs = this.#clock.nowMs();
    let entries = 0;
    let ms = 0;
    for (const guard of guards) {
      const lag = this.#registry.lag(guard.cursor, nowMs);
      entries = Math.max(entries, lag.entries);
      ms = Math.max(ms, lag.ms ?? 0);
    }
    return { connected: guards.length, maxLag: { entries, ms } };
  }

  releaseWaiters(): void {
    for (const waiter of [...this.#waiters]) waiter.finish(true);
    this.#registry.releaseWaiters();
  }

  /** Ends the waits and the refresh timer, and lets the calls in flight (each bounded) finish. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#refresh);
    this.releaseWaiters();
    await Promise.allSettled([...this.#calls]);
    const subscription = this.#subscription;
    this.#subscription = undefined;
    (await subscription)?.();
  }

  #status(guard: SharedGuard, nowMs: number): GuardStatus {
    const lag = this.#registry.lag(guard.cursor, nowMs);
    return {
      guardId: guard.guardId,
      clientId: guard.clientId,
      cursor: guard.cursor,
      lagEntries: lag.entries,
      lagMs: lag.ms,
      connectedAtMs: guard.connectedAtMs,
      lastReportAtMs: guard.lastReceiptMs,
      streams:
        guard.streamNode === undefined
          ? 0
          : guard.streamNode === this.#node
            ? Math.max(1, this.#registry.streams(guard.guardId))
            : 1,
      node: guard.streamNode ?? guard.receiptNode,
      feed: guard.streamNode === undefined ? undefined : 'http',
      lastSeenAtMs: guard.lastSeenMs,
    };
  }

  /** A guard reported `cursor` (here, or on another node through a nudge, or found by a re-read). */
  #heard(guardId: string, cursor: number): void {
    if (this.#subscribedAt !== Number.POSITIVE_INFINITY) {
      const known = this.#heardSince.get(guardId);
      if (known === undefined || cursor > known) this.#heardSince.set(guardId, cursor);
    }
    for (const waiter of this.#waiters) {
      if (cursor >= waiter.cursor && waiter.pending.delete(guardId)) {
        waiter.enforcedBy.push(guardId);
        if (waiter.pending.size === 0) waiter.finish(false);
      }
    }
  }

  /** Holds the subscription to nudges for one wait; resolves once it is in effect (or failed: re-reads remain). */
  async #watch(): Promise<void> {
    this.#watchers += 1;
    if (this.#subscription === undefined) {
      const attempt = this.#store.subscribe((guardId, cursor) => this.#heard(guardId, cursor));
      const subscription: Promise<(() => void) | undefined> = this.#shared('subscribe', () => attempt).then(
        (unsubscribe) => {
          if (unsubscribe === undefined) {
            // Timed out or failed: if it still succeeds later, undo it; the next wait tries again.
            attempt.then(
              (late) => late(),
              () => {},
            );
            if (this.#subscription === subscription) this.#subscription = undefined;
          } else if (this.#subscription === subscription) {
            this.#subscribedAt = performance.now();
          }
          return unsubscribe;
        },
      );
      this.#subscription = subscription;
    }
    await this.#subscription;
  }

  #unwatch(): void {
    this.#watchers -= 1;
    if (this.#watchers > 0) return;
    const subscription = this.#subscription;
    this.#subscription = undefined;
    this.#subscribedAt = Number.POSITIVE_INFINITY;
    this.#heardSince.clear();
    void subscription?.then((unsubscribe) => unsubscribe?.());
  }

  /** The shared registry's guards, from a listing issued at or after `notBefore` (one call serves many). */
  #list(notBefore = Number.NEGATIVE_INFINITY): Promise<SharedGuard[] | undefined> {
    const current = this.#listing;
    if (current !== undefined && current.issuedAt >= notBefore) return current.promise;
    const promise = this.#shared('list', () => this.#store.list(this.#ttlMs)).finally(() => {
      if (this.#listing?.promise === promise) this.#listing = undefined;
    });
    this.#listing = { promise, issuedAt: performance.now() };
    return promise;
  }

  #report(reports: readonly SharedReport[], prune = false): Promise<SharedReportResult[] | undefined> {
    return this.#shared('report', () =>
      this.#store.report(this.#node, reports, { ttlMs: this.#ttlMs, prune }),
    );
  }

  async #refreshStreams(): Promise<void> {
    const reports = this.#registry
      .streaming()
      .map(({ guardId, clientId, cursor }): SharedReport => ({ kind: 'refresh', guardId, clientId, cursor }));
    await this.#report(reports, true);
  }

  #startPolling(): void {
    if (this.#poll !== undefined) return;
    this.#poll = setInterval(() => {
      void this.#list().then((guards) => {
        for (const guard of guards ?? []) this.#heard(guard.guardId, guard.cursor);
      });
    }, this.#pollMs);
    this.#poll.unref();
  }

  #stopPolling(): void {
    clearInterval(this.#poll);
    this.#poll = undefined;
  }

  /** A shared-store call bounded by `timeoutMs`; undefined when it fails (logged once per outage). */
  async #shared<T>(what: string, call: () => Promise<T>): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`guard directory: ${what} did not answer within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    });
    const attempt = Promise.race([call(), timeout]).finally(() => clearTimeout(timer));
    this.#calls.add(attempt);
    try {
      const value = await attempt;
      if (this.#failing) {
        this.#failing = false;
        this.#logger?.info({ node: this.#node }, 'guard directory: shared registry answers again');
      }
      return value;
    } catch (error) {
      if (!this.#failing) {
        this.#failing = true;
        this.#logger?.warn(
          { node: this.#node, error: (error as Error).message },
          'guard directory: shared registry unavailable, answering from this node’s guards',
        );
      }
      return undefined;
    } finally {
      this.#calls.delete(attempt);
    }
  }
}
