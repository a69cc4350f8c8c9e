import { closeSync, fdatasync, fdatasyncSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import type { LogEntry, Rule } from '@revokd/guard';
import { RevokdError } from '../../core/errors.ts';
import { decideRotation } from '../../core/refresh-rotation.ts';
import { AUDIT_COLUMNS, auditRow } from '../audit-row.ts';
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
import { Checkpointer } from './checkpointer.ts';
import { type Flush, GroupCommit } from './group-commit.ts';
import { MIGRATIONS } from './migrations.ts';

export interface SqliteStoreOptions {
  /** Database file; `:memory:` for tests that need no durability. */
  readonly path: string;
  /** Called with newly committed log entries, in cursor order, before the writers are answered. */
  readonly onLogAppended?: ((entries: readonly LogEntry[]) => void) | undefined;
  /** How long a write waits for another process's lock (the CLI, a second server) before failing. */
  readonly busyTimeoutMs?: number;
  /** Replaces the WAL sync (`fdatasync`), for tests that hold a commit between its COMMIT and its sync. */
  readonly flush?: Flush | undefined;
}

/** The `reason` recorded with an `allow` entry (allowlist mode). */
const ALLOW_REASON = 'issued';

/** Client records remembered; more are not cached (a flood of unknown ids must not grow memory). */
const CLIENT_CACHE_SIZE = 10_000;
/** How stale a cached client record may be when another process (the CLI) changed it, in milliseconds. */
const CLIENT_CACHE_CHECK_MS = 100;

/** Ended sessions, and the audit of nothing else, are kept this long after they end, for listing and forensics. */
const ENDED_SESSION_RETENTION_MS = 7 * 86_400_000;

type Row = Record<string, SQLInputValue>;

/**
 * The embedded store: one SQLite file in WAL mode. Writes go through {@link GroupCommit}: callers in the same
 * event-loop turn share a commit, and none is answered before the WAL holding it has been synced to the disk
 * (`fdatasync`, on libuv's thread pool), so an acknowledged write survives a crash or power loss.
 *
 * Between its commit and its sync a write is visible to this connection but not yet durable. Log reads
 * ({@link SqliteStore.readLog}, {@link SqliteStore.snapshot}) stop below the first such entry: a guard must never
 * hold a cursor that a power loss could hand to another rule.
 */
export class SqliteStore implements Store {
  readonly #db: DatabaseSync;
  readonly #writer: GroupCommit;
  readonly #onLogAppended: ((entries: readonly LogEntry[]) => void) | undefined;
  /** The WAL file, synced before writes are answered; undefined for `:memory:`. */
  readonly #walFd: number | undefined;
  /** Checkpoints the WAL on a worker thread; undefined for `:memory:`. */
  readonly #checkpointer: Checkpointer | undefined;
  /** Entries appended by the batch being written. */
  #appended: LogEntry[] = [];
  /** Entries of committed batches not yet durable, one array per batch, oldest first. */
  readonly #notDurable: LogEntry[][] = [];
  readonly #sql: ReturnType<typeof prepareStatements>;
  /**
   * Client records, so client authentication is not a read per request. Emptied by this store's own client
   * writes, and when another connection (the CLI) has committed anything since the cache was last checked, which
   * it is at most {@link CLIENT_CACHE_CHECK_MS} apart: a client changed by the CLI while a server runs takes
   * effect there within that.
   */
  readonly #clients = new Map<string, ClientRecord>();
  #clientsCheckedAtMs = 0;
  #dataVersion = -1;

  /** Opens (creating if needed) the database and applies pending migrations. */
  static open(options: SqliteStoreOptions): SqliteStore {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    let db: DatabaseSync | undefined;
    let walFd: number | undefined;
    let checkpointer: Checkpointer | undefined;
    try {
      db = new DatabaseSync(options.path);
      // Migrations commit with `synchronous = FULL` (SQLite syncs them itself); the store's own writes are
      // synced by the group commit, off the event loop.
      db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
        PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)};`);
      migrate(db);
      // Setting WAL mode created the WAL file, and SQLite keeps it (and its inode) while this connection is open.
      walFd = options.path === ':memory:' ? undefined : openSync(`${options.path}-wal`, 'r');
      if (walFd !== undefined) db.exec('PRAGMA synchronous = NORMAL');
      checkpointer = walFd === undefined ? undefined : new Checkpointer({ path: options.path, db });
      return new SqliteStore(db, walFd, checkpointer, options);
    } catch (cause) {
      void checkpointer?.close();
      if (walFd !== undefined) closeSync(walFd);
      db?.close();
      throw new RevokdError('REVOKD_STORE_UNAVAILABLE', `cannot open SQLite store at ${options.path}`, {
        cause,
      });
    }
  }

  private constructor(
    db: DatabaseSync,
    walFd: number | undefined,
    checkpointer: Checkpointer | undefined,
    options: SqliteStoreOptions,
  ) {
    this.#db = db;
    this.#walFd = walFd;
    this.#checkpointer = checkpointer;
    this.#onLogAppended = options.onLogAppended;
    this.#sql = prepareStatements(db);
    const flush: Flush | undefined =
      walFd === undefined
        ? undefined
        : (options.flush ?? {
            background: (done) => fdatasync(walFd, done),
            now: () => fdatasyncSync(walFd),
          });
    this.#writer = new GroupCommit(
      db,
      {
        committed: () => {
          this.#notDurable.push(this.#appended);
          this.#appended = [];
          this.#checkpointer?.committed();
        },
        durable: () => {
          const entries = this.#notDurable.shift()!;
          if (entries.length > 0) this.#onLogAppended?.(entries);
        },
        rolledBack: () => {
          this.#appended = [];
        },
      },
      flush,
    );
  }

  /** The schema version applied to this database. */
  get schemaVersion(): number {
    return (this.#db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  }

  // --- clients ---

  getClient(id: string): Promise<ClientRecord | undefined> {
    return this.#read(() => {
      this.#checkClientCache();
      const cached = this.#clients.get(id);
      if (cached) return cached;
      const row = this.#sql.getClient.get(id) as Row | undefined;
      const client = row ? toClient(row) : undefined;
      if (client && this.#clients.size < CLIENT_CACHE_SIZE) this.#clients.set(id, client);
      return client;
    });
  }

  #checkClientCache(): void {
    const now = performance.now();
    if (now - this.#clientsCheckedAtMs < CLIENT_CACHE_CHECK_MS) return;
    this.#clientsCheckedAtMs = now;
    // Changes when another connection commits (never for this connection's own commits).
    const version = Number((this.#sql.dataVersion.get() as { data_version: number }).data_version);
    if (version !== this.#dataVersion) {
      this.#dataVersion = version;
      this.#clients.clear();
    }
  }

  listClients(): Promise<ClientRecord[]> {
    return this.#read(() => {
      return (this.#sql.listClients.all() as Row[]).map(toClient);
    });
  }

  saveClient(client: ClientRecord): Promise<void> {
    const { id, secretHash, ...settings } = client;
    return this.#writer
      .write(() => {
        this.#sql.saveClient.run(id, secretHash, JSON.stringify(settings));
      })
      .finally(() => this.#clients.clear());
  }

  deleteClient(id: string): Promise<boolean> {
    return this.#writer
      .write(() => this.#sql.deleteClient.run(id).changes > 0)
      .finally(() => this.#clients.clear());
  }

  // --- keys and secrets ---

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    return this.#read(() => {
      return (this.#sql.listKeys.all() as Row[]).map((row) => ({
        kid: row.kid as string,
        alg: row.alg as SigningKeyRecord['alg'],
        privateJwk: JSON.parse(row.private_jwk as string),
        publicJwk: JSON.parse(row.public_jwk as string),
        state: row.state as SigningKeyRecord['state'],
        createdAtMs: row.created_at_ms as number,
        publishUntilMs: (row.publish_until_ms as number | null) ?? undefined,
      }));
    });
  }

  saveSigningKeys(keys: readonly SigningKeyRecord[], audit: readonly AuditEvent[]): Promise<void> {
    return this.#writer.write(() => {
      // Demote before promote, so the one-active-key index never sees two.
      const ordered = [...keys].sort((a, b) => Number(a.state === 'active') - Number(b.state === 'active'));
      for (const key of ordered) {
        this.#sql.saveKey.run(
          key.kid,
          key.alg,
          JSON.stringify(key.privateJwk),
          JSON.stringify(key.publicJwk),
          key.state,
          key.createdAtMs,
          key.publishUntilMs ?? null,
        );
      }
      this.#insertAudit(audit);
    });
  }

  async getOrCreateSecret(name: string, create: () => string): Promise<string> {
    const existing = this.#sql.getSecret.get(name) as Row | undefined;
    if (existing) return existing.value as string;
    return this.#writer.write(() => {
      this.#sql.insertSecret.run(name, create());
      return (this.#sql.getSecret.get(name) as Row).value as string;
    });
  }

  // --- sessions and refresh tokens ---

  openSession(input: OpenSessionInput): Promise<OpenSessionOutcome> {
    const { session } = input;
    return this.#writer.write(() => {
      if (this.#suspended(session.subject)) return { kind: 'suspended' } as const;
      this.#sql.insertSession.run(
        session.sid,
        session.subject,
        session.clientId,
        session.scope,
        JSON.stringify(session.audience),
        JSON.stringify(session.claims),
        session.createdAtMs,
        session.lastUsedAtMs,
        session.absoluteExpiresAtMs,
      );
      this.#sql.insertFamily.run(input.familyId, session.sid, input.refreshTokenHash);
      this.#sql.insertToken.run(input.refreshTokenHash, input.familyId, session.createdAtMs);
      this.#insertAudit(input.audit);
      if (input.allow === undefined) return { kind: 'opened' } as const;
      const [allowed] = this.#appendRules([input.allow], ALLOW_REASON, session.createdAtMs);
      // Last, as every publication: a write that failed above has published nothing.
      this.#appended.push(allowed!);
      return { kind: 'opened', allowed: allowed! } as const;
    });
  }

  rotateRefreshToken(input: RotateInput): Promise<RotateOutcome> {
    return this.#writer.write((): RotateOutcome => {
      const row = this.#sql.findToken.get(input.presentedHash) as Row | undefined;
      let outcome: RotateOutcome;
      if (!row) {
        outcome = { kind: 'rejected', reason: 'unknown' };
      } else {
        const session = toSession(row);
        const fid = row.fid as string;
        const decision = decideRotation(
          {
            clientId: session.clientId,
            rotatedAtMs: row.rotated_at_ms as number | null,
            successorHash: row.successor_hash as string | null,
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
          case 'rotate':
            // Conditional on the token still being unrotated: the store's own guard against a lost update.
            if (
              this.#sql.markRotated.run(input.nowMs, input.successorHash, input.presentedHash).changes !== 1
            ) {
              throw new RevokdError('REVOKD_STORE_CONFLICT', 'refresh token rotated concurrently');
            }
            this.#sql.insertToken.run(input.successorHash, fid, input.nowMs);
            this.#sql.moveHead.run(input.successorHash, fid);
            this.#sql.touchSession.run(input.nowMs, session.sid);
            outcome = { kind: 'rotated', session: { ...session, lastUsedAtMs: input.nowMs }, fid };
            break;
          case 'replay':
            outcome = { kind: 'replayed', session, fid };
            break;
          case 'reuse': {
            const entries = this.#revokeInTransaction({
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
        const [allowed] = this.#appendRules([input.allow], ALLOW_REASON, input.nowMs);
        outcome = { ...outcome, allowed: allowed! };
      }
      this.#insertAudit(input.audit(outcome));
      // Last, so a write that failed above (the audit callback included) has published nothing.
      if (outcome.kind === 'reuse') this.#appended.push(...outcome.entries);
      else if (outcome.kind !== 'rejected' && outcome.allowed) this.#appended.push(outcome.allowed);
      return outcome;
    });
  }

  findRefreshToken(hash: string): Promise<RefreshTokenView | undefined> {
    return this.#read(() => {
      const row = this.#sql.findToken.get(hash) as Row | undefined;
      if (!row) return undefined;
      return {
        fid: row.fid as string,
        session: toSession(row),
        issuedAtMs: row.issued_at_ms as number,
        rotated: row.rotated_at_ms !== null,
        familyRevoked: row.family_revoked_at_ms !== null,
        subjectSuspended: row.suspended_at_ms !== null,
      };
    });
  }

  getSession(sid: string): Promise<SessionRecord | undefined> {
    return this.#read(() => {
      const row = this.#sql.getSession.get(sid) as Row | undefined;
      return row ? toSession(row) : undefined;
    });
  }

  listSessions(subject: string, options: { includeEnded: boolean; nowMs: number }): Promise<SessionRecord[]> {
    return this.#read(() => {
      const rows = this.#sql.listSessions.all(subject) as Row[];
      return rows
        .map(toSession)
        .filter(
          (s) => options.includeEnded || (s.endedAtMs === undefined && s.absoluteExpiresAtMs > options.nowMs),
        );
    });
  }

  isSubjectSuspended(subject: string): Promise<boolean> {
    return this.#read(() => {
      return this.#suspended(subject);
    });
  }

  reinstateSubject(subject: string, audit: AuditEvent): Promise<boolean> {
    return this.#writer.write(() => {
      const changed = this.#sql.reinstate.run(subject).changes > 0;
      if (changed) this.#insertAudit([audit]);
      return changed;
    });
  }

  // --- revocation log ---

  revoke(request: RevocationRequest): Promise<LogEntry[]> {
    return this.#writer.write(() => {
      const entries = this.#revokeInTransaction(request);
      this.#appended.push(...entries);
      return entries;
    });
  }

  readLog(afterCursor: number, limit: number): Promise<LogEntry[]> {
    return this.#read(() => {
      return (this.#sql.readLog.all(afterCursor, this.#durableBound(), limit) as Row[]).map(toEntry);
    });
  }

  snapshot(nowMs: number): Promise<Snapshot> {
    return this.#read(() => {
      // One read transaction, so the rules and the cursor describe the same instant of the log.
      this.#db.exec('BEGIN');
      try {
        const bound = this.#durableBound();
        const rules = (this.#sql.activeRules.all(nowMs, bound) as Row[]).map(
          (row) => JSON.parse(row.rule as string) as Rule,
        );
        const cursor = Math.min((this.#sql.lastCursor.get() as { cursor: number }).cursor, bound - 1);
        return { rules, cursor };
      } finally {
        this.#db.exec('COMMIT');
      }
    });
  }

  prune(nowMs: number): Promise<number> {
    return this.#writer.write(() => {
      const pruned = Number(this.#sql.pruneRules.run(nowMs).changes);
      this.#sql.pruneSessions.run(nowMs - ENDED_SESSION_RETENTION_MS, nowMs - ENDED_SESSION_RETENTION_MS);
      return pruned;
    });
  }

  // --- back-channel logout outbox ---

  claimLogoutDeliveries(nowMs: number, limit: number, leaseMs: number): Promise<LogoutDelivery[]> {
    return this.#writer.write(() => {
      const rows = this.#sql.claimLogouts.all({ now: nowMs, lease_until: nowMs + leaseMs, limit }) as Row[];
      return rows.map(toLogoutDelivery).sort((a, b) => a.id - b.id);
    });
  }

  completeLogoutDelivery(
    claim: Pick<LogoutDelivery, 'id' | 'attempts'>,
    outcome: LogoutDeliveryOutcome,
  ): Promise<boolean> {
    return this.#writer.write(() => {
      if (outcome.kind === 'retry') {
        const { changes } = this.#sql.retryLogout.run(
          outcome.nextAttemptAtMs,
          outcome.error,
          claim.id,
          claim.attempts,
        );
        return changes > 0;
      }
      if (this.#sql.deleteLogout.run(claim.id, claim.attempts).changes === 0) return false;
      this.#insertAudit(outcome.audit);
      return true;
    });
  }

  // --- audit ---

  appendAudit(events: readonly AuditEvent[]): Promise<void> {
    // The audit trail's batches, written after the answers they record: nobody waits on them.
    return this.#writer.write(() => this.#insertAudit(events), { background: true });
  }

  readAudit(query: AuditQuery): Promise<AuditRecord[]> {
    return this.#read(() => {
      const rows = this.#sql.readAudit.all({
        subject: query.subject ?? null,
        client_id: query.clientId ?? null,
        sid: query.sid ?? null,
        type: query.type ?? null,
        after_id: query.afterId ?? 0,
        limit: query.limit,
      }) as Row[];
      return rows.map((row) => ({
        id: row.id as number,
        type: row.type as AuditRecord['type'],
        atMs: row.at_ms as number,
        actor: row.actor as string,
        subject: (row.subject as string | null) ?? undefined,
        clientId: (row.client_id as string | null) ?? undefined,
        sid: (row.sid as string | null) ?? undefined,
        jti: (row.jti as string | null) ?? undefined,
        reason: (row.reason as string | null) ?? undefined,
        detail: row.detail === null ? undefined : JSON.parse(row.detail as string),
      }));
    });
  }

  async close(): Promise<void> {
    // Let queued writes finish, and become durable, before closing.
    await this.#writer.write(() => undefined).catch(() => {});
    await this.#checkpointer?.close();
    this.#db.close();
    if (this.#walFd !== undefined) closeSync(this.#walFd);
  }

  /** Log reads stop below this cursor: the first entry committed but not yet durable. */
  #durableBound(): number {
    for (const entries of this.#notDurable) if (entries.length > 0) return entries[0]!.cursor;
    return Number.MAX_SAFE_INTEGER;
  }

  /** Runs a synchronous read; a failing database becomes `REVOKD_STORE_UNAVAILABLE` (503), never a 500. */
  async #read<T>(read: () => T): Promise<T> {
    try {
      return read();
    } catch (cause) {
      throw new RevokdError('REVOKD_STORE_UNAVAILABLE', 'the SQLite store could not be read', { cause });
    }
  }

  // --- inside a write transaction ---

  #suspended(subject: string): boolean {
    const row = this.#sql.getSubject.get(subject) as Row | undefined;
    return row !== undefined && row.suspended_at_ms !== null;
  }

  #revokeInTransaction(request: RevocationRequest): LogEntry[] {
    for (const effect of request.effects) this.#applyEffect(effect, request);
    const entries = this.#appendRules(request.rules, request.reason, request.nowMs);
    this.#insertAudit(request.audit);
    // Not published here: the caller publishes as the last step of its write, so a write that fails after this
    // (e.g. in its audit callback) is rolled back and has published nothing.
    return entries;
  }

  /** Appends rules to the log (not published: the caller publishes as the last step of its write). */
  #appendRules(rules: readonly Rule[], reason: string, nowMs: number): LogEntry[] {
    const entries: LogEntry[] = [];
    for (const rule of rules) {
      const result = this.#sql.appendRule.run(JSON.stringify(rule), reason, nowMs, rule.expiresAtMs);
      entries.push({ cursor: Number(result.lastInsertRowid), rule });
    }
    return entries;
  }

  #applyEffect(effect: RevocationEffect, { nowMs, reason }: RevocationRequest): void {
    const sql = this.#sql;
    // Each session-ending effect first queues the logout tokens of exactly the sessions it is about to end.
    const queued = { now: nowMs, reason };
    switch (effect.kind) {
      case 'end-session':
        sql.queueSessionLogout.run({ ...queued, sid: effect.sid });
        sql.endSession.run(nowMs, reason, effect.sid);
        return;
      case 'end-family':
        sql.endFamily.run(nowMs, effect.fid);
        return;
      case 'end-subject-sessions':
        sql.queueSubjectLogouts.run({ ...queued, subject: effect.subject });
        sql.endSubjectSessions.run(nowMs, reason, effect.subject);
        return;
      case 'end-client-sessions':
        sql.queueClientLogouts.run({ ...queued, client_id: effect.clientId });
        sql.endClientSessions.run(nowMs, reason, effect.clientId);
        return;
      case 'end-claim-sessions': {
        const path = `$."${effect.claim.replaceAll('"', '')}"`;
        sql.queueClaimLogouts.run({ ...queued, path, value: effect.value });
        sql.endClaimSessions.run(nowMs, reason, path, effect.value);
        return;
      }
      case 'end-all-sessions':
        sql.queueAllLogouts.run(queued);
        sql.endAllSessions.run(nowMs, reason);
        return;
      case 'suspend-subject':
        sql.suspend.run(effect.subject, nowMs, reason);
        return;
    }
  }

  #insertAudit(events: readonly AuditEvent[]): void {
    for (const e of events) this.#sql.insertAudit.run(...auditRow(e));
  }
}

function migrate(db: DatabaseSync): void {
  const current = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this revokd (${MIGRATIONS.length})`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(MIGRATIONS[version]!);
      db.exec(`PRAGMA user_version = ${version + 1}`);
      db.exec('COMMIT');
    } catch (error) {
      db.exec('ROLLBACK');
      throw error;
    }
  }
}

/**
 * Queues one logout delivery per live session matching `condition` (over `s`) whose client has a
 * `backchannelLogoutUri`. Runs right before the UPDATE that ends those sessions, in the same transaction.
 */
const queueLogouts = (condition: string) => `INSERT INTO logout_outbox
  (sid, subject, client_id, uri, reason, created_at_ms, next_attempt_at_ms)
  SELECT s.sid, s.subject, s.client_id, json_extract(c.settings, '$.backchannelLogoutUri'), $reason, $now, $now
  FROM sessions s JOIN clients c ON c.id = s.client_id
  WHERE s.ended_at_ms IS NULL AND s.absolute_expires_at_ms > $now
    AND json_type(c.settings, '$.backchannelLogoutUri') = 'text' AND ${condition}
  ON CONFLICT (sid, client_id) DO NOTHING`;

const SESSION_COLUMNS = `s.sid, s.subject, s.client_id, s.scope, s.audience, s.claims, s.created_at_ms,
  s.last_used_at_ms, s.absolute_expires_at_ms, s.ended_at_ms, s.end_reason`;

function prepareStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    getClient: p('SELECT id, secret_hash, settings FROM clients WHERE id = ?'),
    dataVersion: p('PRAGMA data_version'),
    listClients: p('SELECT id, secret_hash, settings FROM clients ORDER BY id'),
    saveClient: p(`INSERT INTO clients (id, secret_hash, settings) VALUES (?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, settings = excluded.settings`),
    deleteClient: p('DELETE FROM clients WHERE id = ?'),
    listKeys: p('SELECT * FROM signing_keys ORDER BY created_at_ms'),
    saveKey:
      p(`INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, state, created_at_ms, publish_until_ms)
      VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kid) DO UPDATE SET state = excluded.state,
      publish_until_ms = excluded.publish_until_ms`),
    getSecret: p('SELECT value FROM secrets WHERE name = ?'),
    insertSecret: p('INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
    getSubject: p('SELECT suspended_at_ms FROM subjects WHERE subject = ?'),
    suspend: p(`INSERT INTO subjects (subject, suspended_at_ms, suspend_reason) VALUES (?, ?, ?)
      ON CONFLICT (subject) DO UPDATE SET suspended_at_ms = excluded.suspended_at_ms,
      suspend_reason = excluded.suspend_reason`),
    reinstate: p(`UPDATE subjects SET suspended_at_ms = NULL, suspend_reason = NULL
      WHERE subject = ? AND suspended_at_ms IS NOT NULL`),
    insertSession: p(`INSERT INTO sessions (sid, subject, client_id, scope, audience, claims, created_at_ms,
      last_used_at_ms, absolute_expires_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    getSession: p(`SELECT ${SESSION_COLUMNS} FROM sessions s WHERE s.sid = ?`),
    listSessions: p(`SELECT ${SESSION_COLUMNS} FROM sessions s WHERE s.subject = ? ORDER BY s.created_at_ms`),
    touchSession: p('UPDATE sessions SET last_used_at_ms = ? WHERE sid = ?'),
    insertFamily: p('INSERT INTO refresh_families (fid, sid, head_hash) VALUES (?, ?, ?)'),
    insertToken: p('INSERT INTO refresh_tokens (hash, fid, issued_at_ms) VALUES (?, ?, ?)'),
    findToken: p(`SELECT t.fid, t.issued_at_ms, t.rotated_at_ms, t.successor_hash, f.head_hash,
      f.revoked_at_ms AS family_revoked_at_ms, sub.suspended_at_ms, ${SESSION_COLUMNS}
      FROM refresh_tokens t JOIN refresh_families f ON f.fid = t.fid JOIN sessions s ON s.sid = f.sid
      LEFT JOIN subjects sub ON sub.subject = s.subject WHERE t.hash = ?`),
    markRotated: p(`UPDATE refresh_tokens SET rotated_at_ms = ?, successor_hash = ?
      WHERE hash = ? AND successor_hash IS NULL`),
    moveHead: p('UPDATE refresh_families SET head_hash = ? WHERE fid = ?'),
    endFamily: p('UPDATE refresh_families SET revoked_at_ms = ? WHERE fid = ? AND revoked_at_ms IS NULL'),
    endSession: p(
      `UPDATE sessions SET ended_at_ms = ?, end_reason = ? WHERE sid = ? AND ended_at_ms IS NULL`,
    ),
    endSubjectSessions: p(`UPDATE sessions SET ended_at_ms = ?, end_reason = ?
      WHERE subject = ? AND ended_at_ms IS NULL`),
    endClientSessions: p(`UPDATE sessions SET ended_at_ms = ?, end_reason = ?
      WHERE client_id = ? AND ended_at_ms IS NULL`),
    // A claim may hold one value or an array of values; json_each yields the value itself for a scalar.
    endClaimSessions: p(`UPDATE sessions SET ended_at_ms = ?1, end_reason = ?2 WHERE ended_at_ms IS NULL
      AND EXISTS (SELECT 1 FROM json_each(sessions.claims, ?3) WHERE json_each.value = ?4)`),
    endAllSessions: p('UPDATE sessions SET ended_at_ms = ?, end_reason = ? WHERE ended_at_ms IS NULL'),
    queueSessionLogout: p(queueLogouts('s.sid = $sid')),
    queueSubjectLogouts: p(queueLogouts('s.subject = $subject')),
    queueClientLogouts: p(queueLogouts('s.client_id = $client_id')),
    queueClaimLogouts: p(
      queueLogouts('EXISTS (SELECT 1 FROM json_each(s.claims, $path) WHERE json_each.value = $value)'),
    ),
    queueAllLogouts: p(queueLogouts('1 = 1')),
    claimLogouts: p(`UPDATE logout_outbox SET attempts = attempts + 1, next_attempt_at_ms = $lease_until
      WHERE id IN (SELECT id FROM logout_outbox WHERE next_attempt_at_ms <= $now
        ORDER BY next_attempt_at_ms, id LIMIT $limit)
      RETURNING *`),
    retryLogout: p(`UPDATE logout_outbox SET next_attempt_at_ms = ?, last_error = ?
      WHERE id = ? AND attempts = ?`),
    deleteLogout: p('DELETE FROM logout_outbox WHERE id = ? AND attempts = ?'),
    appendRule: p('INSERT INTO rules (rule, reason, created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?)'),
    readLog: p('SELECT cursor, rule FROM rules WHERE cursor > ? AND cursor < ? ORDER BY cursor LIMIT ?'),
    activeRules: p('SELECT rule FROM rules WHERE expires_at_ms > ? AND cursor < ? ORDER BY cursor'),
    lastCursor: p(`SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'rules'), 0) AS cursor`),
    pruneRules: p('DELETE FROM rules WHERE expires_at_ms <= ?'),
    pruneSessions: p(`DELETE FROM sessions WHERE (ended_at_ms IS NOT NULL AND ended_at_ms < ?)
      OR absolute_expires_at_ms < ?`),
    insertAudit: p(`INSERT INTO audit (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    readAudit: p(`SELECT * FROM audit WHERE id > $after_id
      AND ($subject IS NULL OR subject = $subject) AND ($client_id IS NULL OR client_id = $client_id)
      AND ($sid IS NULL OR sid = $sid) AND ($type IS NULL OR type = $type)
      ORDER BY id LIMIT $limit`),
  };
}

function toClient(row: Row): ClientRecord {
  const settings = JSON.parse(row.settings as string) as Omit<ClientRecord, 'id' | 'secretHash'>;
  return { ...settings, id: row.id as string, secretHash: row.secret_hash as string };
}

function toSession(row: Row): SessionRecord {
  return {
    sid: row.sid as string,
    subject: row.subject as string,
    clientId: row.client_id as string,
    scope: row.scope as string,
    audience: JSON.parse(row.audience as string),
    claims: JSON.parse(row.claims as string),
    createdAtMs: row.created_at_ms as number,
    lastUsedAtMs: row.last_used_at_ms as number,
    absoluteExpiresAtMs: row.absolute_expires_at_ms as number,
    endedAtMs: (row.ended_at_ms as number | null) ?? undefined,
    endReason: (row.end_reason as string | null) ?? undefined,
  };
}

function toLogoutDelivery(row: Row): LogoutDelivery {
  return {
    id: row.id as number,
    sid: row.sid as string,
    subject: row.subject as string,
    clientId: row.client_id as string,
    uri: row.uri as string,
    reason: row.reason as string,
    createdAtMs: row.created_at_ms as number,
    attempts: row.attempts as number,
    lastError: (row.last_error as string | null) ?? undefined,
  };
}

function toEntry(row: Row): LogEntry {
  return { cursor: row.cursor as number, rule: JSON.parse(row.rule as string) as Rule };
}
