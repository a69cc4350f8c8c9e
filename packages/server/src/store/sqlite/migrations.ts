/**
 * Versioned schema migrations, applied in order; `PRAGMA user_version` records the last one applied.
 * Never edit a released migration: append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  /* 1: initial schema */ `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    settings TEXT NOT NULL
  ) STRICT;
  CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_jwk TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'retired', 'revoked')),
    created_at_ms INTEGER NOT NULL,
    publish_until_ms INTEGER
  ) STRICT;
  CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
  CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  CREATE TABLE subjects (
    subject TEXT PRIMARY KEY,
    suspended_at_ms INTEGER,
    suspend_reason TEXT
  ) STRICT;
  CREATE TABLE sessions (
    sid TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    audience TEXT NOT NULL,
    claims TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    last_used_at_ms INTEGER NOT NULL,
    absolute_expires_at_ms INTEGER NOT NULL,
    ended_at_ms INTEGER,
    end_reason TEXT
  ) STRICT;
  CREATE INDEX sessions_by_subject ON sessions (subject);
  CREATE INDEX sessions_by_client ON sessions (client_id);
  CREATE INDEX sessions_by_expiry ON sessions (absolute_expires_at_ms);
  CREATE TABLE refresh_families (
    fid TEXT PRIMARY KEY,
    sid TEXT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    head_hash TEXT NOT NULL,
    revoked_at_ms INTEGER
  ) STRICT;
  CREATE INDEX refresh_families_by_session ON refresh_families (sid);
  CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    fid TEXT NOT NULL REFERENCES refresh_families (fid) ON DELETE CASCADE,
    issued_at_ms INTEGER NOT NULL,
    rotated_at_ms INTEGER,
    successor_hash TEXT
  ) STRICT;
  CREATE INDEX refresh_tokens_by_family ON refresh_tokens (fid);
  CREATE TABLE rules (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX rules_by_expiry ON rules (expires_at_ms);
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT,
    client_id TEXT,
    sid TEXT,
    jti TEXT,
    reason TEXT,
    detail TEXT
  ) STRICT;
  CREATE INDEX audit_by_subject ON audit (subject, id) WHERE subject IS NOT NULL;
  CREATE INDEX audit_by_client ON audit (client_id, id) WHERE client_id IS NOT NULL;
  CREATE INDEX audit_by_session ON audit (sid, id) WHERE sid IS NOT NULL;
  `,
  /* 2: back-channel logout outbox, filled in the transaction that ends the sessions */ `
  CREATE TABLE logout_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sid TEXT NOT NULL,
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    uri TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    last_error TEXT,
    UNIQUE (sid, client_id)
  ) STRICT;
  CREATE INDEX logout_outbox_due ON logout_outbox (next_attempt_at_ms, id);
  `,
];
