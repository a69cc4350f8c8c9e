import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { RevokdError } from '../../core/errors.ts';

interface PendingWrite {
  readonly run: () => unknown;
  /** Nobody is waiting on it to answer a request (audit events written after the answer). */
  readonly background: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A committed batch waiting to be known durable. */
interface CommittedBatch {
  readonly writes: readonly PendingWrite[];
  readonly outcomes: readonly Outcome[];
  /**
   * The last batch (by position in commit order, 1, 2, ...) that must be durable before this one is answered:
   * itself if it changed anything, else the last one before it that did (whose effects it may have read).
   */
  readonly needs: number;
}

/** Makes every transaction committed so far durable: `fdatasync` of the WAL file. */
export interface Flush {
  /** On libuv's thread pool; calls back once done, or with the error that prevents it. */
  readonly background: (done: (error: Error | null) => void) => void;
  /** On the calling thread (the event loop); throws if it cannot. */
  readonly now?: () => void;
}

export interface CommitHooks {
  /** Runs right after each successful COMMIT, in commit order, before the batch is durable. */
  committed(): void;
  /**
   * Runs once per committed batch, in commit order, once the batch is durable and before any caller of it is
   * answered. Never runs for a batch whose flush failed.
   */
  durable(): void;
  /** Runs when a whole batch was rolled back. */
  rolledBack(): void;
}

/**
 * Group commit for a synchronous SQLite connection: every write queued during one turn of the event loop runs
 * in a single transaction, so many callers share one commit. Each write runs in its own savepoint, so one
 * failing write is rolled back alone and the others still commit.
 *
 * Durability is made apart from the commit. The connection commits with `synchronous = NORMAL` (WAL frames
 * written, not synced), and {@link Flush} syncs the WAL on libuv's thread pool: the event loop goes on serving
 * requests, and forming the next batch, while the disk works. One flush at a time; a flush covers every batch
 * committed before it started, so batches that commit during a flush share the next one. No caller is
 * answered, and {@link CommitHooks.durable} does not run, before a flush covering its batch has returned: the
 * guarantee of `synchronous = FULL`, without the event loop waiting for the disk.
 *
 * Except for a lone write: a batch of one write with no flush running means nothing else is waiting to be
 * written, so it is synced right away on the event loop, which spares it the trip to the thread pool and back
 * (~0.1 ms here, a tenth of a lone refresh). Requests that arrive meanwhile wait in the socket and form the next
 * batch, which is synced in the background. A write nobody waits on to answer a request (`background`) is never
 * synced on the event loop.
 *
 * A failed flush leaves the durability of what was committed unknowable (the kernel may have dropped the
 * pages it could not write): its callers are answered `REVOKD_STORE_UNAVAILABLE`, and so is every later write,
 * until the process restarts and SQLite recovers the file from what reached the disk.
 */
export class GroupCommit {
  readonly #db: DatabaseSync;
  readonly #hooks: CommitHooks;
  readonly #flush: Flush | undefined;
  readonly #totalChanges: StatementSync;
  #queue: PendingWrite[] = [];
  #scheduled = false;
  /** Position of the last committed batch, and of the last one that changed anything. */
  #committed = 0;
  #lastChanging = 0;
  /** Every batch up to this position is durable. */
  #durable = 0;
  #awaiting: CommittedBatch[] = [];
  #flushing = false;
  #broken: RevokdError | undefined;

  /** `flush` undefined: every commit is durable when it returns (an in-memory database, or `synchronous = FULL`). */
  constructor(db: DatabaseSync, hooks: CommitHooks, flush?: Flush) {
    this.#db = db;
    this.#hooks = hooks;
    this.#flush = flush;
    this.#totalChanges = db.prepare('SELECT total_changes() AS n');
  }

  /**
   * Runs `run` in the next batch and resolves with its result once the batch is durable. `background`: no request
   * waits on this write, so it is never synced on the event loop (see "a lone write" above).
   */
  write<T>(run: () => T, options: { background?: boolean } = {}): Promise<T> {
    if (this.#broken) return Promise.reject(this.#broken);
    return new Promise<T>((resolve, reject) => {
      const background = options.background ?? false;
      this.#queue.push({ run, background, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#commit());
      }
    });
  }

  #commit(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (this.#broken) {
      for (const write of batch) write.reject(this.#broken);
      return;
    }
    const outcomes: Outcome[] = [];
    const db = this.#db;
    let changesBefore: number;
    try {
      changesBefore = this.#changes();
      db.exec('BEGIN IMMEDIATE');
    } catch (cause) {
      this.#failAll(batch, cause);
      return;
    }
    try {
      for (const write of batch) {
        db.exec('SAVEPOINT write');
        try {
          outcomes.push({ ok: true, value: write.run() });
          db.exec('RELEASE write');
        } catch (error) {
          // If even this fails (an I/O error aborted the transaction), the outer catch fails the whole batch.
          db.exec('ROLLBACK TO write');
          db.exec('RELEASE write');
          outcomes.push({ ok: false, error });
        }
      }
      db.exec('COMMIT');
    } catch (cause) {
      try {
        db.exec('ROLLBACK');
      } catch {
        // SQLite may already have rolled the transaction back.
      }
      this.#failAll(batch, cause);
      return;
    }
    this.#report(() => this.#hooks.committed());
    this.#committed += 1;
    // A batch that changed no row wrote nothing to the WAL: it needs no sync of its own (a claim that found
    // nothing due, say), only those of the batches before it.
    if (this.#flush === undefined || this.#changes() !== changesBefore) this.#lastChanging = this.#committed;
    if (this.#flush === undefined) this.#durable = this.#committed;
    this.#awaiting.push({ writes: batch, outcomes, needs: this.#lastChanging });
    this.#progress();
  }

  /** Answers every batch known durable, in commit order, and starts a flush if one is needed and none runs. */
  #progress(): void {
    while (this.#awaiting.length > 0 && this.#awaiting[0]!.needs <= this.#durable) {
      this.#settle(this.#awaiting.shift()!);
    }
    if (this.#awaiting.length === 0 || this.#flushing || !this.#flush) return;
    const flush = this.#flush;
    const covers = this.#committed;
    const [alone] = this.#awaiting;
    if (
      flush.now &&
      this.#awaiting.length === 1 &&
      alone!.writes.length === 1 &&
      !alone!.writes[0]!.background
    ) {
      try {
        flush.now();
      } catch (error) {
        this.#flushFailed(error);
        return;
      }
      this.#durable = covers;
      this.#progress();
      return;
    }
    this.#flushing = true;
    flush.background((error) => {
      this.#flushing = false;
      if (error) {
        this.#flushFailed(error);
        return;
      }
      this.#durable = covers;
      this.#progress();
    });
  }

  #flushFailed(error: unknown): void {
    this.#broken = new RevokdError(
      'REVOKD_STORE_UNAVAILABLE',
      'the SQLite store could not make its commits durable (the disk failed a sync); restart revokd',
      { cause: error },
    );
    for (const batch of this.#awaiting.splice(0)) {
      for (const write of batch.writes) write.reject(this.#broken);
    }
  }

  #changes(): number {
    return Number((this.#totalChanges.get() as { n: number | bigint }).n);
  }

  #settle({ writes, outcomes }: CommittedBatch): void {
    this.#report(() => this.#hooks.durable());
    writes.forEach((write, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.error);
    });
  }

  #report(hook: () => void): void {
    try {
      hook();
    } catch {
      // The writes are durable whatever a listener does; log followers catch up by reading the log.
    }
  }

  #failAll(batch: readonly PendingWrite[], cause: unknown): void {
    this.#hooks.rolledBack();
    const error = new RevokdError('REVOKD_STORE_UNAVAILABLE', 'the SQLite store could not commit', { cause });
    for (const write of batch) write.reject(error);
  }
}
