import pg from 'pg';
import { RevokdError } from '../../core/errors.ts';
import { unavailable } from './errors.ts';

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

/**
 * Versioned schema migrations, applied in order; `revokd_schema_migrations` records each one applied.
 * Never edit a released migration: append a new one. Every table is prefixed `revokd_`, so the schema can share
 * a database with others.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'initial schema',
    sql: `
  CREATE TABLE revokd_clients (
    id text PRIMARY KEY,
    secret_hash text NOT NULL,
    settings jsonb NOT NULL
  );
  CREATE TABLE revokd_signing_keys (
    kid text PRIMARY KEY,
    alg text NOT NULL,
    private_jwk jsonb NOT NULL,
    public_jwk jsonb NOT NULL,
    state text NOT NULL CHECK (state IN ('active', 'retired', 'revoked')),
    created_at_ms bigint NOT NULL,
    publish_until_ms bigint
  );
  CREATE UNIQUE INDEX revokd_signing_keys_one_active ON revokd_signing_keys (state) WHERE state = 'active';
  CREATE TABLE revokd_secrets (name text PRIMARY KEY, value text NOT NULL);
  CREATE TABLE revokd_subjects (
    subject text PRIMARY KEY,
    suspended_at_ms bigint,
    suspend_reason text
  );
  CREATE TABLE revokd_sessions (
    sid text PRIMARY KEY,
    subject text NOT NULL,
    client_id text NOT NULL,
    scope text NOT NULL,
    audience jsonb NOT NULL,
    claims jsonb NOT NULL,
    created_at_ms bigint NOT NULL,
    last_used_at_ms bigint NOT NULL,
    absolute_expires_at_ms bigint NOT NULL,
    ended_at_ms bigint,
    end_reason text
  );
  CREATE INDEX revokd_sessions_by_subject ON revokd_sessions (subject);
  CREATE INDEX revokd_sessions_by_client ON revokd_sessions (client_id);
  CREATE INDEX revokd_sessions_by_expiry ON revokd_sessions (absolute_expires_at_ms);
  CREATE INDEX revokd_sessions_by_end ON revokd_sessions (ended_at_ms) WHERE ended_at_ms IS NOT NULL;
  CREATE TABLE revokd_refresh_families (
    fid text PRIMARY KEY,
    sid text NOT NULL REFERENCES revokd_sessions (sid) ON DELETE CASCADE,
    head_hash text NOT NULL,
    revoked_at_ms bigint
  );
  CREATE INDEX revokd_refresh_families_by_session ON revokd_refresh_families (sid);
  CREATE TABLE revokd_refresh_tokens (
    hash text PRIMARY KEY,
    fid text NOT NULL REFERENCES revokd_refresh_families (fid) ON DELETE CASCADE,
    issued_at_ms bigint NOT NULL,
    rotated_at_ms bigint,
    successor_hash text
  );
  CREATE INDEX revokd_refresh_tokens_by_family ON revokd_refresh_tokens (fid);

  -- The revocation log. Cursors come from revokd_log_head, never from a sequence: see write-batcher.ts.
  CREATE TABLE revokd_log (
    cursor bigint PRIMARY KEY,
    rule jsonb NOT NULL,
    reason text NOT NULL,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL
  );
  CREATE INDEX revokd_log_by_expiry ON revokd_log (expires_at_ms);
  -- One row: the last cursor handed out (pruning never lowers it).
  CREATE TABLE revokd_log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    cursor bigint NOT NULL
  );
  INSERT INTO revokd_log_head (singleton, cursor) VALUES (true, 0);

  CREATE TABLE revokd_audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms bigint NOT NULL,
    type text NOT NULL,
    actor text NOT NULL,
    subject text,
    client_id text,
    sid text,
    jti text,
    reason text,
    detail jsonb
  );
  CREATE INDEX revokd_audit_by_subject ON revokd_audit (subject, id) WHERE subject IS NOT NULL;
  CREATE INDEX revokd_audit_by_client ON revokd_audit (client_id, id) WHERE client_id IS NOT NULL;
  CREATE INDEX revokd_audit_by_session ON revokd_audit (sid, id) WHERE sid IS NOT NULL;

  -- Back-channel logout outbox, filled in the transaction that ends the sessions.
  CREATE TABLE revokd_logout_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid text NOT NULL,
    subject text NOT NULL,
    client_id text NOT NULL,
    uri text NOT NULL,
    reason text NOT NULL,
    created_at_ms bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at_ms bigint NOT NULL,
    last_error text,
    UNIQUE (sid, client_id)
  );
  CREATE INDEX revokd_logout_outbox_due ON revokd_logout_outbox (next_attempt_at_ms, id);
  `,
  },
];

/** The schema version this revokd needs. */
export const SCHEMA_VERSION = MIGRATIONS.at(-1)?.version ?? 0;

/**
 * Key of the session-level advisory lock that serialises migrations (two int4 halves: "revk", 1). Subject locks
 * use the same first half with another meaning, see postgres-store.ts; advisory locks of other applications
 * sharing the database are unlikely to collide with it.
 */
export const LOCK_NAMESPACE = 0x7265766b;
const MIGRATION_LOCK = 1;

const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS revokd_schema_migrations (
  version integer PRIMARY KEY,
  description text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

/** The highest migration applied to the database (0 when none). */
export async function readSchemaVersion(db: pg.Pool | pg.ClientBase): Promise<number> {
  try {
    const { rows } = await db.query<{ version: number | null }>(
      'SELECT max(version) AS version FROM revokd_schema_migrations',
    );
    return rows[0]?.version ?? 0;
  } catch (error) {
    if (error instanceof pg.DatabaseError && error.code === '42P01') return 0; // undefined_table
    throw error;
  }
}

/** Refuses a database whose schema is not the one this revokd was built for. */
export function assertSchemaVersion(version: number): void {
  if (version < SCHEMA_VERSION) {
    throw new RevokdError(
      'REVOKD_STORE_SCHEMA',
      `the PostgreSQL schema is at version ${version}, this revokd needs ${SCHEMA_VERSION}: run \`revokd migrate\``,
    );
  }
  if (version > SCHEMA_VERSION) {
    throw new RevokdError(
      'REVOKD_STORE_SCHEMA',
      `the PostgreSQL schema is at version ${version}, newer than this revokd (${SCHEMA_VERSION}): upgrade revokd`,
    );
  }
}

/**
 * Applies the missing migrations, each in its own transaction with its `revokd_schema_migrations` row, while
 * holding a session-level advisory lock: nodes (or CLIs) migrating at once run one after the other, and the
 * later ones find nothing left to do. Rejects with `REVOKD_STORE_UNAVAILABLE` when the database cannot be
 * reached and `REVOKD_STORE_SCHEMA` when its schema is newer than this revokd.
 */
export async function migratePostgres(
  url: string,
  options: { connectTimeoutMs?: number | undefined } = {},
): Promise<{ from: number; to: number }> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    application_name: 'revokd migrate',
  });
  // A lost connection also rejects the pending query, which is where it is reported.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (cause) {
    await client.end().catch(() => {});
    throw unavailable('cannot connect to PostgreSQL to migrate', cause);
  }
  try {
    await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, MIGRATION_LOCK]);
    await client.query(CREATE_MIGRATIONS_TABLE);
    const from = await readSchemaVersion(client);
    if (from > SCHEMA_VERSION) assertSchemaVersion(from);
    for (const migration of MIGRATIONS) {
      if (migration.version <= from) continue;
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await client.query('INSERT INTO revokd_schema_migrations (version, description) VALUES ($1, $2)', [
          migration.version,
          migration.description,
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    }
    await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_NAMESPACE, MIGRATION_LOCK]);
    return { from, to: SCHEMA_VERSION };
  } catch (error) {
    if (error instanceof RevokdError) throw error;
    throw unavailable(`migrating the PostgreSQL schema failed: ${(error as Error).message}`, error);
  } finally {
    // Ending the session also releases the advisory lock if the unlock above was not reached.
    await client.end().catch(() => {});
  }
}
