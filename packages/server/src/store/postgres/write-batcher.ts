import type { LogEntry, Rule } from '@revokd/guard';
import type pg from 'pg';
import { AUDIT_COLUMNS, type AuditRow, auditRow } from '../audit-row.ts';
import type { AuditEvent } from '../port.ts';
import { classify, int, isUnavailable, unavailable } from './errors.ts';

/** What a write sees of its transaction. */
export interface WriteContext {
  /** Runs one statement; a failure that makes the store unavailable rejects with `REVOKD_STORE_UNAVAILABLE`. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<pg.QueryResult<R>>;
  /**
   * Sends a statement whose result the write does not need, without waiting for it: it travels with the next
   * one (the connection is pipelined). The write's next {@link query} fails with its error if it failed, so it
   * must be followed by one.
   */
  send(sql: string, params?: readonly unknown[]): void;
  /**
   * Appends rules to the log as part of this write. They get their cursors when the batch commits, so the
   * entries returned here carry cursor 0 until then (a rotation's audit callback sees them so); they are the
   * very objects the write resolves with, and hold their final cursors before anyone is answered.
   */
  append(rules: readonly Rule[], reason: string, nowMs: number): LogEntry[];
  /**
   * Records audit events, inserted with the batch's last statement if this write succeeds. Throws (failing this
   * write) if one cannot be stored.
   */
  audit(events: readonly AuditEvent[]): void;
}

export interface WriteBatcherOptions {
  /** A pool of pipelined connections (`pipeline: true`). */
  readonly pool: pg.Pool;
  /** Most batches in flight at once, each on its own connection. */
  readonly concurrency: number;
  /** Sent as the payload of `NOTIFY revokd_log`, so this store's listener can tell its own commits apart. */
  readonly notifyPayload: string;
  /**
   * Runs after each commit that appended entries, with them in cursor order, before any writer of the batch is
   * answered. Concurrent batches may commit their entries in one order and report them in another: a listener
   * that needs every entry in order reads the log when a report does not continue its cursor.
   */
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
/** Attempts of a batch that hits a deadlock or serialization failure with another transaction. */
const MAX_ATTEMPTS = 4;
/** SQLSTATE of a statement refused because an earlier one of the transaction failed. */
const IN_FAILED_TRANSACTION = '25P02';

/** The audit rows of a batch, as the nine arrays the `unnest` below takes. */
function auditArrays(rows: readonly AuditRow[]): unknown[][] {
  return Array.from({ length: 9 }, (_, column) => rows.map((row) => row[column]));
}

/** Inserts audit events given as arrays from parameter `$first` on, in their order. */
const insertAudit = (first: number) => {
  const p = (i: number) => `$${first + i}`;
  return `INSERT INTO revokd_audit (${AUDIT_COLUMNS}) SELECT ${AUDIT_COLUMNS}
    FROM unnest(${p(0)}::bigint[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::text[],
      ${p(5)}::text[], ${p(6)}::text[], ${p(7)}::text[], ${p(8)}::jsonb[])
      WITH ORDINALITY AS a (${AUDIT_COLUMNS}, ord)
    ORDER BY ord`;
};

const INSERT_AUDIT = insertAudit(1);

/**
 * The batch's audit events, and cursors for the `$1` new entries, taken as the last statement before COMMIT (see
 * postgres-store.ts, "Cluster ordering"): the head row's lock is held only while the entries are inserted and
 * the commit is made durable. The NOTIFY rides in the same statement; PostgreSQL delivers it at commit, and only
 * if the commit happens.
 */
const APPEND_ENTRIES = `WITH audit AS (${insertAudit(7)}
  ), head AS (
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
 * Group commit for PostgreSQL: the writes queued while the connections were busy run in one transaction, each
 * in its own savepoint (taken only before its first statement), so one failing write is rolled back alone and
 * the others still commit, and many writers share one durable commit. No caller is answered before the commit
 * that holds its write has returned.
 *
 * Round trips, not the server, are what a write costs here, so a batch makes few: its connection is pipelined
 * (BEGIN, savepoints, statements whose results are not needed, and COMMIT travel with the next statement), the
 * audit events of all its writes go in with its last statement, and that statement also appends its log
 * entries. A revocation of one token is one round trip. Up to `concurrency` batches run at once, on their own
 * connections: while one holds the log head's lock for its commit, the next does everything before that.
 * A batch that loses a deadlock or serialization race to another transaction is retried as a whole.
 */
export class WriteBatcher {
  readonly #options: WriteBatcherOptions;
  #queue: PendingWrite[] = [];
  #scheduled = false;
  #inFlight = 0;
  #idle: Array<() => void> = [];

  constructor(options: WriteBatcherOptions) {
    this.#options = options;
  }

  write<T>(run: (tx: WriteContext) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // The writes of one turn of the event loop go together.
        setImmediate(() => {
          this.#scheduled = false;
          this.#pump();
        });
      }
    });
  }

  /** Resolves once every queued write has been committed or rejected. */
  idle(): Promise<void> {
    if (this.#inFlight === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (this.#queue.length > 0 && this.#inFlight < this.#options.concurrency) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      this.#inFlight += 1;
      void this.#commit(batch).finally(() => {
        this.#inFlight -= 1;
        this.#pump();
        if (this.#inFlight === 0 && this.#queue.length === 0) {
          for (const resolve of this.#idle.splice(0)) resolve();
        }
      });
    }
  }

  async #commit(batch: readonly PendingWrite[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let result: { outcomes: Outcome[]; entries: PendingEntry[] };
      const attemptState = { commitSent: false };
      try {
        result = await this.#attempt(batch, attemptState);
      } catch (error) {
        if (classify(error) === 'retry' && attempt < MAX_ATTEMPTS) {
          await new Promise((r) => setTimeout(r, attempt * (5 + Math.random() * 20)));
          continue;
        }
        const failure = isUnavailable(error)
          ? error
          : unavailable(`the PostgreSQL store could not commit (${describe(error)})`, error);
        for (const write of batch) write.reject(failure);
        if (attemptState.commitSent) this.#report(this.#options.commitInDoubt);
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
  async #attempt(
    batch: readonly PendingWrite[],
    state: { commitSent: boolean },
  ): Promise<{ outcomes: Outcome[]; entries: PendingEntry[] }> {
    let client: pg.PoolClient;
    try {
      client = await this.#options.pool.connect();
    } catch (cause) {
      throw unavailable('cannot connect to PostgreSQL', cause);
    }
    const connection = new PipelinedTransaction(client);
    let open = false;
    try {
      connection.send('BEGIN');
      open = true;
      // One write alone needs no savepoint: its failure rolls back the transaction, which holds nothing else.
      const savepoints = batch.length > 1;
      const outcomes: Outcome[] = [];
      const entries: PendingEntry[] = [];
      const audit: AuditRow[] = [];
      for (const write of batch) {
        const appended: PendingEntry[] = [];
        const audited: AuditRow[] = [];
        let started = false;
        let savepoint = false;
        const start = () => {
          started = true;
          if (savepoints && !savepoint) {
            connection.send('SAVEPOINT revokd_write');
            savepoint = true;
          }
        };
        const tx: WriteContext = {
          query: ((sql: string, params?: readonly unknown[]) => {
            start();
            return connection.query(sql, params);
          }) as WriteContext['query'],
          send(sql, params) {
            start();
            connection.send(sql, params);
          },
          append(rules, reason, nowMs) {
            const added = rules.map((rule) => ({ entry: { cursor: 0, rule }, reason, createdAtMs: nowMs }));
            appended.push(...added);
            return added.map((pending) => pending.entry);
          },
          audit(events) {
            audited.push(...events.map(auditRow));
          },
        };
        try {
          const value = await write.run(tx);
          if (savepoint) connection.send('RELEASE SAVEPOINT revokd_write');
          outcomes.push({ ok: true, value });
          entries.push(...appended);
          audit.push(...audited);
        } catch (error) {
          // Lost connection, deadlock, serialization failure: the batch fails (and may be retried) as a whole.
          if (connection.lost !== undefined || isUnavailable(error) || classify(error) === 'retry')
            throw error;
          if (savepoint) {
            await connection.recover('ROLLBACK TO SAVEPOINT revokd_write');
            connection.send('RELEASE SAVEPOINT revokd_write');
          } else if (started) {
            await connection.recover('ROLLBACK');
            open = false;
          }
          outcomes.push({ ok: false, error });
        }
      }
      if (!open) return { outcomes, entries };
      // The last statement and COMMIT go together: the log head's lock is held for one round trip, not two.
      const last =
        entries.length > 0
          ? connection.sendForResult(APPEND_ENTRIES, [
              entries.length,
              entries.map((e) => JSON.stringify(e.entry.rule)),
              entries.map((e) => e.reason),
              entries.map((e) => e.createdAtMs),
              entries.map((e) => e.entry.rule.expiresAtMs),
              this.#options.notifyPayload,
              ...auditArrays(audit),
            ])
          : audit.length > 0
            ? connection.sendForResult(INSERT_AUDIT, auditArrays(audit))
            : undefined;
      state.commitSent = true;
      const commit = connection.sendForResult('COMMIT');
      open = false; // COMMIT ends the transaction, whatever became of the statement before it.
      const [appended, committed] = await Promise.allSettled([
        last === undefined ? undefined : connection.settle(last),
        connection.settle(commit),
      ]);
      if (committed.status === 'rejected') throw committed.reason;
      // COMMIT of a transaction that had failed answers ROLLBACK instead of an error: certainly not committed.
      if (committed.value.command !== 'COMMIT' || appended.status === 'rejected') {
        state.commitSent = false;
        throw appended.status === 'rejected'
          ? appended.reason
          : unavailable('PostgreSQL rolled the batch back', undefined);
      }
      if (entries.length > 0) assignCursors(entries, appended.value!);
      return { outcomes, entries };
    } catch (error) {
      if (open && connection.lost === undefined) await connection.abandon();
      throw error;
    } finally {
      connection.release();
    }
  }
}

/** Sets the cursors of appended entries from the result of {@link APPEND_ENTRIES}. */
function assignCursors(entries: PendingEntry[], result: pg.QueryResult): void {
  const row = result.rows[0];
  if (int(row?.appended) !== entries.length) throw new Error('the log append wrote a wrong number of rows');
  const first = int(row?.last) - entries.length + 1;
  entries.forEach((pending, i) => {
    pending.entry.cursor = first + i;
  });
}

/**
 * One pooled connection in pipeline mode, running one transaction: statements may be sent without waiting for
 * their results, which arrive in order. Remembers the first failure of a statement nobody waited for, so the
 * statement that then fails because the transaction is aborted (25P02) reports the cause instead.
 */
class PipelinedTransaction {
  readonly #client: pg.PoolClient;
  /** The error that lost the connection (or made the store unavailable), if any. */
  lost: unknown;
  #unawaitedError: unknown;
  #corked = false;
  readonly #unawaited: Array<Promise<unknown>> = [];
  readonly #onError = (error: unknown) => {
    this.lost ??= error;
  };

  constructor(client: pg.PoolClient) {
    this.#client = client;
    // A checked-out client that loses its connection emits 'error'; without a listener that would crash.
    client.on('error', this.#onError);
  }

  send(sql: string, params?: readonly unknown[]): void {
    this.#cork();
    const sent = this.#client.query(statement(sql, params)).catch((error: unknown) => {
      this.#unawaitedError ??= error;
    });
    this.#unawaited.push(sent);
  }

  /** Sends a statement now; its result is read later with {@link settle}. */
  sendForResult(sql: string, params?: readonly unknown[]): Promise<pg.QueryResult> {
    this.#cork();
    const sent = this.#client.query(statement(sql, params));
    // Read by settle(); until then a rejection must not count as unhandled.
    sent.catch(() => {});
    return sent;
  }

  query(sql: string, params?: readonly unknown[]): Promise<pg.QueryResult> {
    return this.settle(this.sendForResult(sql, params));
  }

  async settle(sent: Promise<pg.QueryResult>): Promise<pg.QueryResult> {
    try {
      return await sent;
    } catch (error) {
      // Results arrive in order: every statement sent before this one has settled by now.
      await Promise.all(this.#unawaited);
      const cause =
        (error as { code?: string }).code === IN_FAILED_TRANSACTION && this.#unawaitedError !== undefined
          ? this.#unawaitedError
          : error;
      if (classify(cause) === 'unavailable') {
        this.lost ??= cause;
        throw unavailable(`PostgreSQL failed: ${describe(cause)}`, cause);
      }
      throw cause;
    }
  }

  /**
   * Holds the socket's writes until the current synchronous run ends, so the statements it sends (BEGIN and the
   * first query, the last statement and COMMIT) leave in one write: a system call costs more than a statement.
   */
  #cork(): void {
    if (this.#corked) return;
    const { stream } = this.#client.connection;
    stream.cork();
    this.#corked = true;
    process.nextTick(() => {
      this.#corked = false;
      stream.uncork();
    });
  }

  /** Runs a statement that brings an aborted transaction (or savepoint) back: earlier failures are then undone. */
  async recover(sql: string): Promise<void> {
    await this.query(sql);
    this.#unawaitedError = undefined;
  }

  /** Rolls back what is left of a failed attempt. */
  async abandon(): Promise<void> {
    await this.#client.query('ROLLBACK').catch((error: unknown) => {
      this.lost ??= error;
    });
  }

  release(): void {
    this.#client.off('error', this.#onError);
    const lost = this.lost;
    this.#client.release(
      lost === undefined ? undefined : lost instanceof Error ? lost : new Error(String(lost)),
    );
  }
}

/** Names given to the statements this process runs, by text. */
const statementNames = new Map<string, string>();

/**
 * A statement with parameters runs as a named prepared statement, parsed and planned once per connection
 * instead of once per call; the rest (BEGIN, COMMIT, savepoints) go as simple queries.
 */
function statement(text: string, params: readonly unknown[] | undefined): pg.QueryConfig {
  if (params === undefined) return { text };
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `revokd_w${statementNames.size + 1}`;
    statementNames.set(text, name);
  }
  return { name, text, values: params as unknown[] };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
