import type { LogEntry, Rule } from '@revokd/guard';
import type pg from 'pg';
import { classify, int, isUnavailable, unavailable } from './errors.ts';

/** What a write sees of its transaction. */
export interface WriteContext {
  /** Runs one statement; a failure that makes the store unavailable rejects with `REVOKD_STORE_UNAVAILABLE`. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<pg.QueryResult<R>>;
  /**
   * Appends rules to the log as part of this write. They get their cursors when the batch commits, so the
   * entries returned here carry cursor 0 until then (a rotation's audit callback sees them so); they are the
   * very objects the write resolves with, and hold their final cursors before anyone is answered.
   */
  append(rules: readonly Rule[], reason: string, nowMs: number): LogEntry[];
}

export interface WriteBatcherOptions {
  readonly pool: pg.Pool;
  /** Sent as the payload of `NOTIFY revokd_log`, so this store's listener can tell its own commits apart. */
  readonly notifyPayload: string;
  /** Runs after each commit that appended entries, with them in cursor order, before any writer is answered. */
  readonly committed: (entries: readonly LogEntry[]) => void;
  /**
   * Runs when the connection was lost while COMMIT was under way: PostgreSQL may have committed the batch,
   * whose writers are nonetheless told `REVOKD_STORE_UNAVAILABLE`. Its entries, if any, can only be found by
   * reading the log.
   */
  readonly commitInDoubt: () => void;
}

interface PendingWrite {
  readonly run: (tx: WriteContext) => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** An appended rule: `entry` is what the writer gets back, its cursor set when the batch commits. */
interface PendingEntry {
  readonly entry: { cursor: number; readonly rule: Rule };
  readonly reason: string;
  readonly createdAtMs: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Most writes in one transaction: bounds how long a batch holds its row locks. */
const MAX_BATCH = 64;
/** Attempts of a batch that hits a deadlock or serialization failure with another node's transaction. */
const MAX_ATTEMPTS = 4;

/**
 * Cursors for the `$1` new entries, taken as the last statement before COMMIT (see postgres-store.ts, "Cluster
 * ordering"): the head row's lock is held only while the entries are inserted and the commit is made durable.
 * The NOTIFY rides in the same statement; PostgreSQL delivers it at commit, and only if the commit happens.
 */
const APPEND_ENTRIES = `WITH head AS (
    UPDATE revokd_log_head SET cursor = cursor + $1::bigint RETURNING cursor
  ), appended AS (
    INSERT INTO revokd_log (cursor, rule, reason, created_at_ms, expires_at_ms)
    SELECT head.cursor - $1::bigint + e.ord, e.rule, e.reason, e.created_at_ms, e.expires_at_ms
    FROM head, unnest($2::jsonb[], $3::text[], $4::bigint[], $5::bigint[])
      WITH ORDINALITY AS e (rule, reason, created_at_ms, expires_at_ms, ord)
    RETURNING cursor
  )
  SELECT (SELECT cursor FROM head) AS last, (SELECT count(*) FROM appended) AS appended,
    pg_notify('revokd_log', $6) AS notified`;

/**
 * Group commit for PostgreSQL: every write queued while the previous batch was committing runs in one
 * transaction on one connection, each in its own savepoint, so one failing write is rolled back alone and the
 * others still commit, and many writers share one durable commit. No caller is answered before the commit that
 * holds its write has returned. Batches run one at a time, so this store's own log entries are announced in
 * cursor order. A batch that loses a deadlock or serialization race to another node is retried as a whole.
 */
export class WriteBatcher {
  readonly #options: WriteBatcherOptions;
  #queue: PendingWrite[] = [];
  #running = false;
  #idle: Array<() => void> = [];
  /** Whether the current attempt has sent COMMIT (batches run one at a time). */
  #commitSent = false;

  constructor(options: WriteBatcherOptions) {
    this.#options = options;
  }

  write<T>(run: (tx: WriteContext) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#running) {
        this.#running = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  /** Resolves once every queued write has been committed or rejected. */
  idle(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      await this.#commit(batch);
    }
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  async #commit(batch: readonly PendingWrite[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let result: { outcomes: Outcome[]; entries: PendingEntry[] };
      try {
        result = await this.#attempt(batch);
      } catch (error) {
        if (classify(error) === 'retry' && attempt < MAX_ATTEMPTS) {
          await new Promise((r) => setTimeout(r, attempt * (5 + Math.random() * 20)));
          continue;
        }
        const failure = isUnavailable(error)
          ? error
          : unavailable(`the PostgreSQL store could not commit (${describe(error)})`, error);
        for (const write of batch) write.reject(failure);
        if (this.#commitSent) this.#report(this.#options.commitInDoubt);
        return;
      }
      if (result.entries.length > 0) {
        const entries = result.entries.map((pending) => pending.entry);
        this.#report(() => this.#options.committed(entries));
      }
      batch.forEach((write, i) => {
        const outcome = result.outcomes[i]!;
        if (outcome.ok) write.resolve(outcome.value);
        else write.reject(outcome.error);
      });
      return;
    }
  }

  #report(listener: () => void): void {
    try {
      listener();
    } catch {
      // The writes are durable (or in doubt) whatever a listener does; log followers catch up by reading the log.
    }
  }

  /**
   * One transaction for the batch. Resolves with each write's outcome and the appended entries (cursors set)
   * once COMMIT has returned; rejects when the whole batch failed (nothing of it committed, unless the
   * connection was lost during COMMIT itself, when PostgreSQL may or may not have committed it).
   */
  async #attempt(batch: readonly PendingWrite[]): Promise<{ outcomes: Outcome[]; entries: PendingEntry[] }> {
    this.#commitSent = false;
    let client: pg.PoolClient;
    try {
      client = await this.#options.pool.connect();
    } catch (cause) {
      throw unavailable('cannot connect to PostgreSQL', cause);
    }
    let lost: unknown;
    // A checked-out client that loses its connection emits 'error'; without a listener that would crash.
    const onError = (error: unknown) => {
      lost ??= error;
    };
    client.on('error', onError);
    const run = async (sql: string, params?: readonly unknown[]) => {
      try {
        return await client.query(sql, params as unknown[] | undefined);
      } catch (error) {
        if (classify(error) === 'unavailable') {
          lost ??= error;
          throw unavailable(`PostgreSQL failed: ${describe(error)}`, error);
        }
        throw error;
      }
    };
    let open = false;
    try {
      await run('BEGIN');
      open = true;
      // One write alone needs no savepoint: its failure rolls back the transaction, which holds nothing else.
      const savepoints = batch.length > 1;
      const outcomes: Outcome[] = [];
      const entries: PendingEntry[] = [];
      for (const write of batch) {
        const appended: PendingEntry[] = [];
        const tx: WriteContext = {
          query: run as WriteContext['query'],
          append(rules, reason, nowMs) {
            const added = rules.map((rule) => ({ entry: { cursor: 0, rule }, reason, createdAtMs: nowMs }));
            appended.push(...added);
            return added.map((pending) => pending.entry);
          },
        };
        if (savepoints) await run('SAVEPOINT revokd_write');
        try {
          const value = await write.run(tx);
          if (savepoints) await run('RELEASE SAVEPOINT revokd_write');
          outcomes.push({ ok: true, value });
          entries.push(...appended);
        } catch (error) {
          // Lost connection, deadlock, serialization failure: the batch fails (and may be retried) as a whole.
          if (lost !== undefined || isUnavailable(error) || classify(error) === 'retry') throw error;
          if (savepoints) {
            await run('ROLLBACK TO SAVEPOINT revokd_write');
            await run('RELEASE SAVEPOINT revokd_write');
          } else {
            await run('ROLLBACK');
            open = false;
          }
          outcomes.push({ ok: false, error });
        }
      }
      if (!open) return { outcomes, entries };
      if (entries.length > 0) await this.#assignCursors(run, entries);
      this.#commitSent = true;
      const commit = await run('COMMIT');
      open = false;
      // COMMIT of a transaction that had failed answers ROLLBACK instead of an error: certainly not committed.
      if (commit.command !== 'COMMIT') {
        this.#commitSent = false;
        throw unavailable('PostgreSQL rolled the batch back', undefined);
      }
      return { outcomes, entries };
    } catch (error) {
      if (open && lost === undefined) await client.query('ROLLBACK').catch((e: unknown) => (lost ??= e));
      throw error;
    } finally {
      client.off('error', onError);
      client.release(lost === undefined ? undefined : lost instanceof Error ? lost : new Error(String(lost)));
    }
  }

  async #assignCursors(
    run: (sql: string, params?: readonly unknown[]) => Promise<pg.QueryResult>,
    entries: PendingEntry[],
  ): Promise<void> {
    const { rows } = await run(APPEND_ENTRIES, [
      entries.length,
      entries.map((e) => JSON.stringify(e.entry.rule)),
      entries.map((e) => e.reason),
      entries.map((e) => e.createdAtMs),
      entries.map((e) => e.entry.rule.expiresAtMs),
      this.#options.notifyPayload,
    ]);
    const last = int(rows[0]?.last);
    if (int(rows[0]?.appended) !== entries.length)
      throw new Error('the log append wrote a wrong number of rows');
    const first = last - entries.length + 1;
    entries.forEach((pending, i) => {
      pending.entry.cursor = first + i;
    });
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
