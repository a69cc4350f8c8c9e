import type { DatabaseSync } from 'node:sqlite';
import { RevokdError } from '../../core/errors.ts';

interface PendingWrite {
  readonly run: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

export interface CommitHooks {
  /** Runs after each successful commit, before any caller of that batch is answered. */
  committed(): void;
  /** Runs when a whole batch was rolled back. */
  rolledBack(): void;
}

/**
 * Group commit for a synchronous SQLite connection: every write queued during one turn of the event loop runs
 * in a single transaction, so many callers share one fsync'd commit. Each write runs in its own savepoint, so
 * one failing write is rolled back alone and the others still commit. No caller is answered before the commit
 * that holds its write has returned from fsync.
 */
export class GroupCommit {
  readonly #db: DatabaseSync;
  readonly #hooks: CommitHooks;
  #queue: PendingWrite[] = [];
  #scheduled = false;

  constructor(db: DatabaseSync, hooks: CommitHooks) {
    this.#db = db;
    this.#hooks = hooks;
  }

  write<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    const db = this.#db;
    try {
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
    try {
      this.#hooks.committed();
    } catch {
      // The writes are durable whatever a listener does; log followers catch up by reading the log.
    }
    batch.forEach((write, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.error);
    });
  }

  #failAll(batch: readonly PendingWrite[], cause: unknown): void {
    this.#hooks.rolledBack();
    const error = new RevokdError('REVOKD_STORE_UNAVAILABLE', 'the SQLite store could not commit', { cause });
    for (const write of batch) write.reject(error);
  }
}
