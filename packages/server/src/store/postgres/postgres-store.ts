/**
 * The cluster store: several revokd nodes (and the CLI) share one PostgreSQL database.
 *
 * ## Cluster ordering
 * A reader that has seen log cursor N must never later find a committed entry below N: guards and log followers
 * resume "after N", so such an entry would be skipped for good. With one writer (SQLite) commit order is cursor
 * order for free; with several nodes committing at once it has to be made so. A sequence would not do it: T1
 * draws 5, T2 draws 6, T2 commits first, a reader sees 6 and moves on, then T1 commits 5 behind it.
 *
 * So cursors come from one counter row, `revokd_log_head`, and every transaction that appends to the log takes
 * them as its last statement before COMMIT: `UPDATE revokd_log_head SET cursor = cursor + n RETURNING cursor`,
 * inserting its entries at `cursor - n + 1 .. cursor` in the same statement (see write-batcher.ts). Why this is
 * correct:
 * - The UPDATE locks the row until the transaction ends, so appenders hold it one at a time, in turn.
 * - PostgreSQL makes a commit visible (removes it from the proc array) before it releases the transaction's
 *   locks, and a waiter for the row (READ COMMITTED) then re-reads the committed head. So when T2 gets its
 *   cursors, T1, which handed out every lower one, is already visible to every new snapshot: commit visibility
 *   order equals cursor order. A reader's statement snapshot therefore sees a prefix of the log (minus pruned
 *   rules), never an entry above a missing one.
 * - Cursors are gapless: the counter moves in the same transaction as the entries, so a rollback (or a crash
 *   before COMMIT) takes both back. Pruning deletes entries but never lowers the head.
 * - `snapshot()` reads the head and the rules in one statement, so the cursor it reports is the last entry the
 *   rules reflect.
 * The price is that log appends from all nodes are serialised for the duration of one insert and one durable
 * COMMIT; everything else a write does (effects, audit, row locks) happens before, outside that window, and
 * same-node writes share one transaction (write-batcher.ts), so one lock hold covers many appends, and that
 * transaction sends its last statement and COMMIT together, so the hold lasts one round trip.
 *
 * ## Cross-node atomicity
 * The SQLite store gets these from its single writer; here they come from locks, at READ COMMITTED:
 * - Rotation reads the token, its family and its session `FOR UPDATE`, so concurrent rotations of one token run
 *   one after the other, each deciding on what the previous one committed (a row locked by a transaction that
 *   then changed it is read again in its committed version: READ COMMITTED's re-check); and a revocation ending
 *   the session or family (an UPDATE of the same rows) is ordered with it, never undone by it. The subject's
 *   suspension is read from the statement's snapshot, not locked: a suspension ends the subject's sessions, so
 *   one that commits while the rotation waits for its locks shows in the session row it then reads.
 * - openSession takes a shared transaction-scoped advisory lock on its subject, and a revocation that suspends
 *   the subject or ends its sessions takes it exclusively before its effects: either the session commits first
 *   and is ended, or the opening waits and then finds the subject suspended.
 * - getOrCreateSecret inserts with ON CONFLICT DO NOTHING and then reads in a new statement: every node gets the
 *   first committed value. Logout claims skip rows another node has locked (`FOR UPDATE SKIP LOCKED`).
 * - A transaction that loses a deadlock or serialization race (40P01, 40001) is retried a few times.
 */
import { randomUUID } from 'node:crypto';
import type { LogEntry, Rule } from '@revokd/guard';
import pg from 'pg';
import { RevokdError } from '../../core/errors.ts';
import { decideRotation } from '../../core/refresh-rotation.ts';
import type {
  AuditEvent,
  AuditQuery,
  AuditRecord,
  ClientRecord,
  LogoutDelivery,
  LogoutDeliveryOutcome,
  OpenSessionInput,
  OpenSessionOutcome,
  RefreshTokenView,
  RevocationEffect,
  RevocationRequest,
  RotateInput,
  RotateOutcome,
  SessionRecord,
  SigningKeyRecord,
  Snapshot,
  Store,
} from '../port.ts';
import { int, intOrUndefined, unavailable } from './errors.ts';
import { CLIENTS_CHANNEL, LogListener } from './log-listener.ts';
import { assertSchemaVersion, readSchemaVersion } from './migrations.ts';
import { WriteBatcher, type WriteContext } from './write-batcher.ts';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database`. */
  readonly url: string;
  /** Connections in the pool (one of them serves writes at a time); the LISTEN connection is one more. Default 10. */
  readonly poolSize?: number | undefined;
  /** This process's commits: newly committed log entries in cursor order, before the writers are answered. */
  readonly onLogAppended?: ((entries: readonly LogEntry[]) => void) | undefined;
  /**
   * Another process (node, CLI) committed log entries, or notifications may have been missed (the LISTEN
   * connection was re-established): the caller reads the log from its cursor.
   */
  readonly onRemoteCommit?: (() => void) | undefined;
  /** How long to wait for a connection before failing with `REVOKD_STORE_UNAVAILABLE`, in ms. Default 5000. */
  readonly connectTimeoutMs?: number | undefined;
  /**
   * Longest a statement may run, in ms (server-side `statement_timeout`; the client gives up one second later
   * if the server does not answer at all). Default 10000.
   */
  readonly statementTimeoutMs?: number | undefined;
}

/** The `reason` recorded with an `allow` entry (allowlist mode). */
const ALLOW_REASON = 'issued';

/** Ended sessions are kept this long after they end, for listing and forensics. */
const ENDED_SESSION_RETENTION_MS = 7 * 86_400_000;

/** First half of the advisory lock key of a subject (the second is `hashtext(subject)`): "revl". */
const SUBJECT_LOCK_NAMESPACE = 0x7265766c;

type Row = Record<string, unknown>;

/** Most write batches in flight at once (each on its own connection). */
const MAX_WRITE_BATCHES = 4;

const poolSize = (options: PostgresStoreOptions): number => options.poolSize ?? 10;

/** Client records remembered; more are not cached (a flood of unknown ids must not grow memory). */
const CLIENT_CACHE_SIZE = 10_000;

export class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly #listener: LogListener;
  readonly #writer: WriteBatcher;
  #closed = false;
  /**
   * Client records, so client authentication is not a round trip per request. Safe because every client change
   * notifies {@link CLIENTS_CHANNEL} at commit and each notification empties the cache; while the LISTEN connection
   * is down (when a notification could be missed) the cache is neither read nor filled. A change made on another
   * node takes effect here as fast as a revocation does (milliseconds).
   */
  readonly #clients = new Map<string, ClientRecord>();
  /** Bumped by each invalidation: a read that started before one does not fill the cache with what it read. */
  #clientsGeneration = 0;

  /**
   * Connects and checks the schema. Rejects with `REVOKD_STORE_SCHEMA` when the database has not been migrated
   * to this revokd's schema (run `revokd migrate`), `REVOKD_STORE_UNAVAILABLE` when it cannot be reached.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const client = clientConfig(options);
    // Pipelined: the write batcher sends statements without waiting for each result (see write-batcher.ts).
    const pool = new pg.Pool({
      ...client,
      pipeline: true,
      max: poolSize(options),
      idleTimeoutMillis: 30_000,
    });
    // An idle connection that dies (PostgreSQL restarted) is dropped by the pool; the next checkout reconnects.
    pool.on('error', () => {});
    const nodeId = randomUUID();
    let store: PostgresStore | undefined;
    const listener = new LogListener({
      client,
      ownPayload: nodeId,
      onRemoteCommit: () => options.onRemoteCommit?.(),
      onClientsChanged: () => {
        if (store) store.#forgetClients();
      },
    });
    try {
      let version: number;
      try {
        version = await readSchemaVersion(pool);
      } catch (cause) {
        throw unavailable(`cannot open the PostgreSQL store: ${(cause as Error).message}`, cause);
      }
      assertSchemaVersion(version);
      try {
        await listener.start();
      } catch (cause) {
        throw unavailable(`cannot LISTEN on PostgreSQL: ${(cause as Error).message}`, cause);
      }
    } catch (error) {
      await listener.close();
      await pool.end().catch(() => {});
      throw error;
    }
    store = new PostgresStore(pool, listener, nodeId, options);
    return store;
  }

  private constructor(pool: pg.Pool, listener: LogListener, nodeId: string, options: PostgresStoreOptions) {
    this.#pool = pool;
    this.#listener = listener;
    const { onLogAppended, onRemoteCommit } = options;
    this.#writer = new WriteBatcher({
      pool,
      // Leaves connections for reads (client lookups, snapshots) while writes are busy.
      concurrency: Math.max(1, Math.min(MAX_WRITE_BATCHES, poolSize(options) - 2)),
      notifyPayload: nodeId,
      committed: (entries) => onLogAppended?.(entries),
      // Our own NOTIFY is ignored by our listener, so a commit we cannot confirm must be looked for in the log.
      commitInDoubt: () => onRemoteCommit?.(),
    });
  }

  /** Whether the LISTEN connection is up (it reconnects by itself after PostgreSQL comes back). */
  get listening(): boolean {
    return this.#listener.listening;
  }

  // --- clients ---

  async getClient(id: string): Promise<ClientRecord | undefined> {
    const cacheable = this.#listener.listening;
    if (cacheable) {
      const cached = this.#clients.get(id);
      if (cached) return cached;
    }
    const generation = this.#clientsGeneration;
    const client = await this.#read(async () => {
      const { rows } = await this.#pool.query(
        `SELECT id, secret_hash, settings FROM revokd_clients WHERE id = $1`,
        [id],
      );
      return rows[0] ? toClient(rows[0]) : undefined;
    });
    if (
      client &&
      cacheable &&
      this.#listener.listening &&
      generation === this.#clientsGeneration &&
      this.#clients.size < CLIENT_CACHE_SIZE
    ) {
      this.#clients.set(id, client);
    }
    return client;
  }

  #forgetClients(): void {
    this.#clientsGeneration += 1;
    this.#clients.clear();
  }

  listClients(): Promise<ClientRecord[]> {
    return this.#read(async () => {
      const { rows } = await this.#pool.query(
        'SELECT id, secret_hash, settings FROM revokd_clients ORDER BY id',
      );
      return rows.map(toClient);
    });
  }

  saveClient(client: ClientRecord): Promise<void> {
    const { id, secretHash, ...settings } = client;
    return this.#write(async (tx) => {
      await tx.query(
        `INSERT INTO revokd_clients (id, secret_hash, settings) VALUES ($1, $2, $3::jsonb)
        ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, settings = excluded.settings`,
        [id, secretHash, JSON.stringify(settings)],
      );
      await tx.query(`NOTIFY ${CLIENTS_CHANNEL}`);
    }).finally(() => this.#forgetClients());
  }

  deleteClient(id: string): Promise<boolean> {
    return this.#write(async (tx) => {
      const { rowCount } = await tx.query('DELETE FROM revokd_clients WHERE id = $1', [id]);
      await tx.query(`NOTIFY ${CLIENTS_CHANNEL}`);
      return (rowCount ?? 0) > 0;
    }).finally(() => this.#forgetClients());
  }

  // --- keys and secrets ---

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    return this.#read(async () => {
      const { rows } = await this.#pool.query(
        'SELECT * FROM revokd_signing_keys ORDER BY created_at_ms, kid',
      );
      return rows.map((row) => ({
        kid: row.kid as string,
        alg: row.alg as SigningKeyRecord['alg'],
        privateJwk: row.private_jwk as Record<string, unknown>,
        publicJwk: row.public_jwk as Record<string, unknown>,
        state: row.state as SigningKeyRecord['state'],
        createdAtMs: int(row.created_at_ms),
        publishUntilMs: intOrUndefined(row.publish_until_ms),
      }));
    });
  }

  saveSigningKeys(keys: readonly SigningKeyRecord[], audit: readonly AuditEvent[]): Promise<void> {
    return this.#write(async (tx) => {
      // Demote before promote, so the one-active-key index (checked row by row) never sees two.
      const ordered = [...keys].sort((a, b) => Number(a.state === 'active') - Number(b.state === 'active'));
      for (const key of ordered) {
        await tx.query(
          `INSERT INTO revokd_signing_keys (kid, alg, private_jwk, public_jwk, state, created_at_ms, publish_until_ms)
          VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7) ON CONFLICT (kid) DO UPDATE SET state = excluded.state,
          publish_until_ms = excluded.publish_until_ms`,
          [
            key.kid,
            key.alg,
            JSON.stringify(key.privateJwk),
            JSON.stringify(key.publicJwk),
            key.state,
            key.createdAtMs,
            key.publishUntilMs ?? null,
          ],
        );
      }
      tx.audit(audit);
    }).catch((error: unknown) => {
      // Two nodes rotating (or creating the first key) at once: the second finds the other's key active.
      if (error instanceof pg.DatabaseError && error.constraint === 'revokd_signing_keys_one_active') {
        throw new RevokdError('REVOKD_STORE_CONFLICT', 'another signing key became active concurrently', {
          cause: error,
        });
      }
      throw error;
    });
  }

  async getOrCreateSecret(name: string, create: () => string): Promise<string> {
    const existing = await this.#read(async () => {
      const { rows } = await this.#pool.query('SELECT value FROM revokd_secrets WHERE name = $1', [name]);
      return rows[0]?.value as string | undefined;
    });
    if (existing !== undefined) return existing;
    return this.#write(async (tx) => {
      await tx.query(
        'INSERT INTO revokd_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING',
        [name, create()],
      );
      // A new statement: it sees the row of a node whose insert won, which the INSERT above waited for.
      const { rows } = await tx.query('SELECT value FROM revokd_secrets WHERE name = $1', [name]);
      return rows[0]!.value as string;
    });
  }

  // --- sessions and refresh tokens ---

  openSession(input: OpenSessionInput): Promise<OpenSessionOutcome> {
    const { session } = input;
    return this.#write(async (tx): Promise<OpenSessionOutcome> => {
      // Shared with other openings, exclusive with a suspension: see "Cross-node atomicity" above. The check
      // below is a new statement, so it sees a suspension that committed while this waited for the lock.
      tx.send('SELECT pg_advisory_xact_lock_shared($1::int, hashtext($2))', [
        SUBJECT_LOCK_NAMESPACE,
        session.subject,
      ]);
      const { rowCount } = await tx.query(
        'SELECT 1 FROM revokd_subjects WHERE subject = $1 AND suspended_at_ms IS NOT NULL',
        [session.subject],
      );
      if ((rowCount ?? 0) > 0) return { kind: 'suspended' };
      await tx.query(OPEN_SESSION, [
        session.sid,
        session.subject,
        session.clientId,
        session.scope,
        JSON.stringify(session.audience),
        JSON.stringify(session.claims),
        session.createdAtMs,
        session.lastUsedAtMs,
        session.absoluteExpiresAtMs,
        input.familyId,
        input.refreshTokenHash,
      ]);
      tx.audit(input.audit);
      if (input.allow === undefined) return { kind: 'opened' };
      const [allowed] = tx.append([input.allow], ALLOW_REASON, session.createdAtMs);
      return { kind: 'opened', allowed: allowed! };
    });
  }

  rotateRefreshToken(input: RotateInput): Promise<RotateOutcome> {
    return this.#write(async (tx): Promise<RotateOutcome> => {
      // Locked as read: nothing can change these rows until this transaction ends (see "Cross-node atomicity").
      const { rows } = await tx.query(`${FIND_TOKEN} FOR UPDATE OF t, f, s`, [input.presentedHash]);
      const row = rows[0];
      let outcome: RotateOutcome;
      if (!row) {
        outcome = { kind: 'rejected', reason: 'unknown' };
      } else {
        const session = toSession(row);
        const fid = row.fid as string;
        const decision = decideRotation(
          {
            clientId: session.clientId,
            rotatedAtMs: intOrUndefined(row.rotated_at_ms) ?? null,
            successorHash: (row.successor_hash as string | null) ?? null,
          },
          { headHash: row.head_hash as string, revoked: row.family_revoked_at_ms !== null },
          {
            revoked: session.endedAtMs !== undefined,
            lastUsedAtMs: session.lastUsedAtMs,
            absoluteExpiresAtMs: session.absoluteExpiresAtMs,
            subjectSuspended: row.suspended_at_ms !== null,
          },
          input.clientId,
          input.nowMs,
          input.policy,
        );
        switch (decision.kind) {
          case 'rotate': {
            const { rows: marked } = await tx.query(ROTATE, [
              input.nowMs,
              input.successorHash,
              input.presentedHash,
              session.sid,
            ]);
            // Conditional on the token still being unrotated: the store's own guard against a lost update.
            if (int(marked[0]?.rotated) !== 1) {
              throw new RevokdError('REVOKD_STORE_CONFLICT', 'refresh token rotated concurrently');
            }
            outcome = { kind: 'rotated', session: { ...session, lastUsedAtMs: input.nowMs }, fid };
            break;
          }
          case 'replay':
            outcome = { kind: 'replayed', session, fid };
            break;
          case 'reuse': {
            const entries = await this.#revokeIn(tx, {
              rules: input.reuseRules({ sid: session.sid, fid }),
              effects: [
                { kind: 'end-family', fid },
                { kind: 'end-session', sid: session.sid },
              ],
              reason: 'refresh_token_reuse',
              nowMs: input.nowMs,
              audit: [],
            });
            outcome = { kind: 'reuse', session, fid, entries };
            break;
          }
          case 'reject':
            outcome = { kind: 'rejected', reason: decision.reason };
            break;
        }
      }
      if (input.allow !== undefined && (outcome.kind === 'rotated' || outcome.kind === 'replayed')) {
        const [allowed] = tx.append([input.allow], ALLOW_REASON, input.nowMs);
        outcome = { ...outcome, allowed: allowed! };
      }
      tx.audit(input.audit(outcome));
      return outcome;
    });
  }

  findRefreshToken(hash: string): Promise<RefreshTokenView | undefined> {
    return this.#read(async () => {
      const { rows } = await this.#pool.query(FIND_TOKEN, [hash]);
      const row = rows[0];
      if (!row) return undefined;
      return {
        fid: row.fid as string,
        session: toSession(row),
        issuedAtMs: int(row.issued_at_ms),
        rotated: row.rotated_at_ms !== null,
        familyRevoked: row.family_revoked_at_ms !== null,
        subjectSuspended: row.suspended_at_ms !== null,
      };
    });
  }

  getSession(sid: string): Promise<SessionRecord | undefined> {
    return this.#read(async () => {
      const { rows } = await this.#pool.query(
        `SELECT ${SESSION_COLUMNS} FROM revokd_sessions s WHERE s.sid = $1`,
        [sid],
      );
      return rows[0] ? toSession(rows[0]) : undefined;
    });
  }

  listSessions(subject: string, options: { includeEnded: boolean; nowMs: number }): Promise<SessionRecord[]> {
    return this.#read(async () => {
      const { rows } = await this.#pool.query(
        `SELECT ${SESSION_COLUMNS} FROM revokd_sessions s WHERE s.subject = $1 ORDER BY s.created_at_ms, s.sid`,
        [subject],
      );
      return rows
        .map(toSession)
        .filter(
          (s) => options.includeEnded || (s.endedAtMs === undefined && s.absoluteExpiresAtMs > options.nowMs),
        );
    });
  }

  isSubjectSuspended(subject: string): Promise<boolean> {
    return this.#read(async () => {
      const { rowCount } = await this.#pool.query(
        'SELECT 1 FROM revokd_subjects WHERE subject = $1 AND suspended_at_ms IS NOT NULL',
        [subject],
      );
      return (rowCount ?? 0) > 0;
    });
  }

  reinstateSubject(subject: string, audit: AuditEvent): Promise<boolean> {
    return this.#write(async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE revokd_subjects SET suspended_at_ms = NULL, suspend_reason = NULL
        WHERE subject = $1 AND suspended_at_ms IS NOT NULL`,
        [subject],
      );
      const changed = (rowCount ?? 0) > 0;
      if (changed) tx.audit([audit]);
      return changed;
    });
  }

  // --- revocation log ---

  revoke(request: RevocationRequest): Promise<LogEntry[]> {
    return this.#write((tx) => this.#revokeIn(tx, request));
  }

  readLog(afterCursor: number, limit: number): Promise<LogEntry[]> {
    return this.#read(async () => {
      const { rows } = await this.#pool.query(
        'SELECT cursor, rule FROM revokd_log WHERE cursor > $1 ORDER BY cursor LIMIT $2',
        [afterCursor, limit],
      );
      return rows.map((row) => ({ cursor: int(row.cursor), rule: row.rule as Rule }));
    });
  }

  snapshot(nowMs: number): Promise<Snapshot> {
    return this.#read(async () => {
      // One statement, so the head and the rules come from one snapshot: the cursor is the last entry they reflect.
      const { rows } = await this.#pool.query(
        `SELECT h.cursor AS head, l.rule FROM revokd_log_head h
        LEFT JOIN revokd_log l ON l.expires_at_ms > $1 ORDER BY l.cursor`,
        [nowMs],
      );
      const rules: Rule[] = [];
      for (const row of rows) if (row.rule !== null) rules.push(row.rule as Rule);
      return { cursor: int(rows[0]?.head), rules };
    });
  }

  prune(nowMs: number): Promise<number> {
    return this.#write(async (tx) => {
      const { rowCount } = await tx.query('DELETE FROM revokd_log WHERE expires_at_ms <= $1', [nowMs]);
      const before = nowMs - ENDED_SESSION_RETENTION_MS;
      // Families and refresh tokens go with their session (ON DELETE CASCADE).
      await tx.query(
        `DELETE FROM revokd_sessions WHERE (ended_at_ms IS NOT NULL AND ended_at_ms < $1)
        OR absolute_expires_at_ms < $1`,
        [before],
      );
      return rowCount ?? 0;
    });
  }

  // --- back-channel logout outbox ---

  claimLogoutDeliveries(nowMs: number, limit: number, leaseMs: number): Promise<LogoutDelivery[]> {
    return this.#write(async (tx) => {
      // SKIP LOCKED: rows another node is claiming right now are left to it, not waited for and claimed twice.
      const { rows } = await tx.query(
        `UPDATE revokd_logout_outbox o SET attempts = o.attempts + 1, next_attempt_at_ms = $2
        WHERE o.id IN (SELECT id FROM revokd_logout_outbox WHERE next_attempt_at_ms <= $1
          ORDER BY next_attempt_at_ms, id LIMIT $3 FOR UPDATE SKIP LOCKED)
        RETURNING o.*`,
        [nowMs, nowMs + leaseMs, limit],
      );
      return rows.map(toLogoutDelivery).sort((a, b) => a.id - b.id);
    });
  }

  completeLogoutDelivery(
    claim: Pick<LogoutDelivery, 'id' | 'attempts'>,
    outcome: LogoutDeliveryOutcome,
  ): Promise<boolean> {
    return this.#write(async (tx) => {
      if (outcome.kind === 'retry') {
        const { rowCount } = await tx.query(
          `UPDATE revokd_logout_outbox SET next_attempt_at_ms = $1, last_error = $2
          WHERE id = $3 AND attempts = $4`,
          [outcome.nextAttemptAtMs, outcome.error, claim.id, claim.attempts],
        );
        return (rowCount ?? 0) > 0;
      }
      const { rowCount } = await tx.query(
        'DELETE FROM revokd_logout_outbox WHERE id = $1 AND attempts = $2',
        [claim.id, claim.attempts],
      );
      if ((rowCount ?? 0) === 0) return false;
      tx.audit(outcome.audit);
      return true;
    });
  }

  // --- audit ---

  appendAudit(events: readonly AuditEvent[]): Promise<void> {
    return this.#write(async (tx) => tx.audit(events));
  }

  readAudit(query: AuditQuery): Promise<AuditRecord[]> {
    return this.#read(async () => {
      const { rows } = await this.#pool.query(
        `SELECT id, at_ms, type, actor, subject, client_id, sid, jti, reason, detail FROM revokd_audit
        WHERE id > $1 AND ($2::text IS NULL OR subject = $2) AND ($3::text IS NULL OR client_id = $3)
          AND ($4::text IS NULL OR sid = $4) AND ($5::text IS NULL OR type = $5)
        ORDER BY id LIMIT $6`,
        [
          query.afterId ?? 0,
          query.subject ?? null,
          query.clientId ?? null,
          query.sid ?? null,
          query.type ?? null,
          query.limit,
        ],
      );
      return rows.map((row) => ({
        id: int(row.id),
        type: row.type as AuditRecord['type'],
        atMs: int(row.at_ms),
        actor: row.actor as string,
        subject: (row.subject as string | null) ?? undefined,
        clientId: (row.client_id as string | null) ?? undefined,
        sid: (row.sid as string | null) ?? undefined,
        jti: (row.jti as string | null) ?? undefined,
        reason: (row.reason as string | null) ?? undefined,
        detail: (row.detail as Record<string, unknown> | null) ?? undefined,
      }));
    });
  }

  /** Lets queued writes finish, then ends the pool and the LISTEN connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writer.idle();
    await this.#listener.close();
    await this.#pool.end().catch(() => {});
  }

  #write<T>(run: (tx: WriteContext) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(unavailable('the PostgreSQL store is closed', undefined));
    return this.#writer.write(run);
  }

  /** Runs a read on the pool; any failure becomes `REVOKD_STORE_UNAVAILABLE` (503), never a 500. */
  async #read<T>(read: () => Promise<T>): Promise<T> {
    if (this.#closed) throw unavailable('the PostgreSQL store is closed', undefined);
    try {
      return await read();
    } catch (cause) {
      throw unavailable(`the PostgreSQL store could not be read: ${(cause as Error).message}`, cause);
    }
  }

  // --- inside a write transaction ---

  async #revokeIn(tx: WriteContext, request: RevocationRequest): Promise<LogEntry[]> {
    const subjects = request.effects.flatMap((e) =>
      e.kind === 'suspend-subject' || e.kind === 'end-subject-sessions' ? [e.subject] : [],
    );
    const statements = request.effects.map((effect) => effectStatement(effect, request));
    if (subjects.length > 0) {
      // Exclusive with openSession for these subjects (see "Cross-node atomicity"), taken before any effect.
      statements.unshift([
        `SELECT pg_advisory_xact_lock($1::int, h)
        FROM (SELECT DISTINCT hashtext(s) AS h FROM unnest($2::text[]) AS s ORDER BY h) AS subjects`,
        [SUBJECT_LOCK_NAMESPACE, subjects],
      ]);
    }
    // Sent together; the last one is waited for, and fails if any before it did.
    statements.forEach(([sql, params], i) => {
      if (i < statements.length - 1) tx.send(sql, params);
    });
    const last = statements.at(-1);
    if (last) await tx.query(last[0], last[1]);
    // Cursors are assigned at commit, as the transaction's last step (see "Cluster ordering").
    const entries = tx.append(request.rules, request.reason, request.nowMs);
    tx.audit(request.audit);
    return entries;
  }
}

function clientConfig(options: PostgresStoreOptions): pg.ClientConfig {
  const statementTimeoutMs = options.statementTimeoutMs ?? 10_000;
  return {
    connectionString: options.url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    statement_timeout: statementTimeoutMs,
    // The server's own timeout cannot fire when the server is gone or frozen: the client gives up too.
    query_timeout: statementTimeoutMs + 1_000,
    // A node frozen inside a transaction must not hold its row locks (the log head's, say) forever.
    idle_in_transaction_session_timeout: Math.max(30_000, 2 * statementTimeoutMs),
    keepAlive: true,
    application_name: 'revokd',
  };
}

type Statement = readonly [sql: string, params: readonly unknown[]];

/** The statement that applies one effect of a revocation. */
function effectStatement(effect: RevocationEffect, { nowMs, reason }: RevocationRequest): Statement {
  switch (effect.kind) {
    case 'end-session':
      return [endSessions('s.sid = $3'), [nowMs, reason, effect.sid]];
    case 'end-family':
      return [
        'UPDATE revokd_refresh_families SET revoked_at_ms = $1 WHERE fid = $2 AND revoked_at_ms IS NULL',
        [nowMs, effect.fid],
      ];
    case 'end-subject-sessions':
      return [endSessions('s.subject = $3'), [nowMs, reason, effect.subject]];
    case 'end-client-sessions':
      return [endSessions('s.client_id = $3'), [nowMs, reason, effect.clientId]];
    case 'end-claim-sessions':
      // A claim may hold one value or an array of values: jsonb containment matches a string equal to the
      // value or an array holding it. Quotes are dropped from the name, as the SQLite store's JSON path does.
      return [
        endSessions('s.claims -> $3::text @> to_jsonb($4::text)'),
        [nowMs, reason, effect.claim.replaceAll('"', ''), effect.value],
      ];
    case 'end-all-sessions':
      return [endSessions('TRUE'), [nowMs, reason]];
    case 'suspend-subject':
      return [
        `INSERT INTO revokd_subjects (subject, suspended_at_ms, suspend_reason) VALUES ($1, $2, $3)
        ON CONFLICT (subject) DO UPDATE SET suspended_at_ms = excluded.suspended_at_ms,
        suspend_reason = excluded.suspend_reason`,
        [effect.subject, nowMs, reason],
      ];
  }
}

/**
 * Ends the live sessions matching `condition` (over `s`; `$1` is now, `$2` the reason) and, in the same
 * statement, queues one logout delivery for each of them that had not yet expired and whose client has a
 * `backchannelLogoutUri`. Only the transaction whose UPDATE actually ended a session queues its logout: a
 * concurrent one waits for the row and then finds it ended.
 */
const endSessions = (condition: string) => `WITH ended AS (
    UPDATE revokd_sessions s SET ended_at_ms = $1, end_reason = $2
    WHERE s.ended_at_ms IS NULL AND ${condition}
    RETURNING s.sid, s.subject, s.client_id, s.absolute_expires_at_ms
  )
  INSERT INTO revokd_logout_outbox (sid, subject, client_id, uri, reason, created_at_ms, next_attempt_at_ms)
  SELECT e.sid, e.subject, e.client_id, c.settings ->> 'backchannelLogoutUri', $2, $1, $1
  FROM ended e JOIN revokd_clients c ON c.id = e.client_id
  WHERE e.absolute_expires_at_ms > $1 AND jsonb_typeof(c.settings -> 'backchannelLogoutUri') = 'string'
  ON CONFLICT (sid, client_id) DO NOTHING`;

const SESSION_COLUMNS = `s.sid, s.subject, s.client_id, s.scope, s.audience, s.claims, s.created_at_ms,
  s.last_used_at_ms, s.absolute_expires_at_ms, s.ended_at_ms, s.end_reason`;

/** The session, its first family and first refresh token, in one statement. */
const OPEN_SESSION = `WITH session AS (
    INSERT INTO revokd_sessions (sid, subject, client_id, scope, audience, claims, created_at_ms, last_used_at_ms,
      absolute_expires_at_ms)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::bigint, $8::bigint, $9::bigint) RETURNING sid
  ), family AS (
    INSERT INTO revokd_refresh_families (fid, sid, head_hash) SELECT $10::text, sid, $11::text FROM session
    RETURNING fid
  )
  INSERT INTO revokd_refresh_tokens (hash, fid, issued_at_ms) SELECT $11::text, fid, $7::bigint FROM family`;

const FIND_TOKEN = `SELECT t.fid, t.issued_at_ms, t.rotated_at_ms, t.successor_hash, f.head_hash,
  f.revoked_at_ms AS family_revoked_at_ms, sub.suspended_at_ms, ${SESSION_COLUMNS}
  FROM revokd_refresh_tokens t JOIN revokd_refresh_families f ON f.fid = t.fid
  JOIN revokd_sessions s ON s.sid = f.sid LEFT JOIN revokd_subjects sub ON sub.subject = s.subject
  WHERE t.hash = $1`;

/** Marks the presented token rotated (if it still is not), adds its successor as the family head, touches the session. */
const ROTATE = `WITH marked AS (
    UPDATE revokd_refresh_tokens SET rotated_at_ms = $1::bigint, successor_hash = $2::text
    WHERE hash = $3::text AND successor_hash IS NULL RETURNING fid
  ), successor AS (
    INSERT INTO revokd_refresh_tokens (hash, fid, issued_at_ms) SELECT $2::text, fid, $1::bigint FROM marked
  ), head AS (
    UPDATE revokd_refresh_families SET head_hash = $2::text WHERE fid IN (SELECT fid FROM marked)
  ), touched AS (
    UPDATE revokd_sessions SET last_used_at_ms = $1::bigint WHERE sid = $4::text AND EXISTS (SELECT 1 FROM marked)
  )
  SELECT count(*) AS rotated FROM marked`;

function toClient(row: Row): ClientRecord {
  const settings = row.settings as Omit<ClientRecord, 'id' | 'secretHash'>;
  return { ...settings, id: row.id as string, secretHash: row.secret_hash as string };
}

function toSession(row: Row): SessionRecord {
  return {
    sid: row.sid as string,
    subject: row.subject as string,
    clientId: row.client_id as string,
    scope: row.scope as string,
    audience: row.audience as string[],
    claims: row.claims as Record<string, unknown>,
    createdAtMs: int(row.created_at_ms),
    lastUsedAtMs: int(row.last_used_at_ms),
    absoluteExpiresAtMs: int(row.absolute_expires_at_ms),
    endedAtMs: intOrUndefined(row.ended_at_ms),
    endReason: (row.end_reason as string | null) ?? undefined,
  };
}

function toLogoutDelivery(row: Row): LogoutDelivery {
  return {
    id: int(row.id),
    sid: row.sid as string,
    subject: row.subject as string,
    clientId: row.client_id as string,
    uri: row.uri as string,
    reason: row.reason as string,
    createdAtMs: int(row.created_at_ms),
    attempts: int(row.attempts),
    lastError: (row.last_error as string | null) ?? undefined,
  };
}
