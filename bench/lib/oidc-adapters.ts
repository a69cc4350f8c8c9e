/**
 * Storage adapters for the `oidc-provider` baseline of `token-service`, in its adapter interface (`upsert`, `find`,
 * `findByUid`, `findByUserCode`, `consume`, `destroy`, `revokeByGrantId`), each written the usual way: one
 * statement, in its own transaction, per call.
 *
 * - `memory`: process memory, nothing durable (its own development adapter is an LRU of 1000 entries, which evicts
 *   live grants under this load).
 * - `sqlite`: a SQLite file in WAL mode with `synchronous = FULL`: every write durable before it returns, as
 *   revokd's embedded store makes its writes.
 * - `postgres`: a PostgreSQL table through a pool of 10 connections, each write committed (durable) before it
 *   returns, as revokd's cluster store makes its writes.
 */
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';

export type Payload = Record<string, unknown> & { grantId?: string; uid?: string; userCode?: string };

export interface AdapterClass {
  new (
    model: string,
  ): {
    upsert(id: string, payload: Payload, expiresIn?: number): Promise<void>;
    find(id: string): Promise<Payload | undefined>;
    findByUid(uid: string): Promise<Payload | undefined>;
    findByUserCode(userCode: string): Promise<Payload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  };
}

export type AdapterKind = 'memory' | 'sqlite' | 'postgres';

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The values of an entry's row: model, id, payload, grant_id, uid, user_code, expires_at. */
function entryRow(model: string, id: string, payload: Payload, expiresIn?: number) {
  const expiresAt = expiresIn ? nowSeconds() + expiresIn : null;
  return [
    model,
    id,
    JSON.stringify(payload),
    payload.grantId ?? null,
    payload.uid ?? null,
    payload.userCode ?? null,
    expiresAt,
  ] as const;
}

export function memoryAdapter(): AdapterClass {
  const entries = new Map<string, { payload: Payload; expiresAtMs: number }>();
  const byGrant = new Map<string, Set<string>>();
  const byUid = new Map<string, string>();
  return class MemoryAdapter {
    readonly model: string;
    constructor(model: string) {
      this.model = model;
    }
    private key(id: string): string {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      const key = this.key(id);
      entries.set(key, { payload, expiresAtMs: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
      if (payload.grantId) {
        let keys = byGrant.get(payload.grantId);
        if (!keys) {
          keys = new Set();
          byGrant.set(payload.grantId, keys);
        }
        keys.add(key);
      }
      if (payload.uid) byUid.set(payload.uid, id);
    }
    async find(id: string): Promise<Payload | undefined> {
      const entry = entries.get(this.key(id));
      if (!entry) return undefined;
      if (entry.expiresAtMs <= Date.now()) {
        entries.delete(this.key(id));
        return undefined;
      }
      return entry.payload;
    }
    async findByUid(uid: string): Promise<Payload | undefined> {
      const id = byUid.get(uid);
      return id === undefined ? undefined : this.find(id);
    }
    async findByUserCode(): Promise<undefined> {
      return undefined;
    }
    async consume(id: string): Promise<void> {
      const entry = entries.get(this.key(id));
      if (entry) entry.payload.consumed = nowSeconds();
    }
    async destroy(id: string): Promise<void> {
      entries.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      for (const key of byGrant.get(grantId) ?? []) entries.delete(key);
      byGrant.delete(grantId);
    }
  };
}

const TABLE = `CREATE TABLE IF NOT EXISTS oidc_entries (
    model TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL, grant_id TEXT, uid TEXT, user_code TEXT,
    expires_at BIGINT, PRIMARY KEY (model, id));
  CREATE INDEX IF NOT EXISTS oidc_entries_grant ON oidc_entries (grant_id);
  CREATE INDEX IF NOT EXISTS oidc_entries_uid ON oidc_entries (uid);
  CREATE INDEX IF NOT EXISTS oidc_entries_user_code ON oidc_entries (user_code);`;

export function sqliteAdapter(path: string): AdapterClass {
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; ${TABLE}`);
  const sql = {
    upsert: db.prepare(`INSERT INTO oidc_entries (model, id, payload, grant_id, uid, user_code, expires_at)
      VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload,
      grant_id = excluded.grant_id, uid = excluded.uid, user_code = excluded.user_code,
      expires_at = excluded.expires_at`),
    find: db.prepare('SELECT payload, expires_at FROM oidc_entries WHERE model = ? AND id = ?'),
    findByUid: db.prepare('SELECT payload, expires_at FROM oidc_entries WHERE model = ? AND uid = ?'),
    findByUserCode: db.prepare(
      'SELECT payload, expires_at FROM oidc_entries WHERE model = ? AND user_code = ?',
    ),
    consume: db.prepare(
      `UPDATE oidc_entries SET payload = json_set(payload, '$.consumed', ?) WHERE model = ? AND id = ?`,
    ),
    destroy: db.prepare('DELETE FROM oidc_entries WHERE model = ? AND id = ?'),
    revokeByGrantId: db.prepare('DELETE FROM oidc_entries WHERE grant_id = ?'),
  };
  const live = (row: Record<string, unknown> | undefined): Payload | undefined =>
    row && (row.expires_at === null || Number(row.expires_at) > nowSeconds())
      ? (JSON.parse(row.payload as string) as Payload)
      : undefined;
  return class SqliteAdapter {
    readonly model: string;
    constructor(model: string) {
      this.model = model;
    }
    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      sql.upsert.run(...entryRow(this.model, id, payload, expiresIn));
    }
    async find(id: string): Promise<Payload | undefined> {
      return live(sql.find.get(this.model, id));
    }
    async findByUid(uid: string): Promise<Payload | undefined> {
      return live(sql.findByUid.get(this.model, uid));
    }
    async findByUserCode(userCode: string): Promise<Payload | undefined> {
      return live(sql.findByUserCode.get(this.model, userCode));
    }
    async consume(id: string): Promise<void> {
      sql.consume.run(nowSeconds(), this.model, id);
    }
    async destroy(id: string): Promise<void> {
      sql.destroy.run(this.model, id);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      sql.revokeByGrantId.run(grantId);
    }
  };
}

export async function postgresAdapter(url: string): Promise<AdapterClass> {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on('error', () => {});
  await pool.query(TABLE.replace('payload TEXT', 'payload JSONB'));
  const live = (rows: Array<Record<string, unknown>>): Payload | undefined => {
    const row = rows[0];
    return row && (row.expires_at === null || Number(row.expires_at) > nowSeconds())
      ? (row.payload as Payload)
      : undefined;
  };
  const select = (where: string) =>
    `SELECT payload, expires_at FROM oidc_entries WHERE model = $1 AND ${where}`;
  return class PostgresAdapter {
    readonly model: string;
    constructor(model: string) {
      this.model = model;
    }
    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      await pool.query(
        `INSERT INTO oidc_entries (model, id, payload, grant_id, uid, user_code, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload,
        grant_id = excluded.grant_id, uid = excluded.uid, user_code = excluded.user_code,
        expires_at = excluded.expires_at`,
        [...entryRow(this.model, id, payload, expiresIn)],
      );
    }
    async find(id: string): Promise<Payload | undefined> {
      return live((await pool.query(select('id = $2'), [this.model, id])).rows);
    }
    async findByUid(uid: string): Promise<Payload | undefined> {
      return live((await pool.query(select('uid = $2'), [this.model, uid])).rows);
    }
    async findByUserCode(userCode: string): Promise<Payload | undefined> {
      return live((await pool.query(select('user_code = $2'), [this.model, userCode])).rows);
    }
    async consume(id: string): Promise<void> {
      await pool.query(
        `UPDATE oidc_entries SET payload = jsonb_set(payload, '{consumed}', to_jsonb($1::bigint))
        WHERE model = $2 AND id = $3`,
        [nowSeconds(), this.model, id],
      );
    }
    async destroy(id: string): Promise<void> {
      await pool.query('DELETE FROM oidc_entries WHERE model = $1 AND id = $2', [this.model, id]);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      await pool.query('DELETE FROM oidc_entries WHERE grant_id = $1', [grantId]);
    }
  };
}
