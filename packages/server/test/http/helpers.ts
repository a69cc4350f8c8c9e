/**
 * Small helpers shared by the HTTP tests: they only drive the app through HTTP (inject) or read the store, so a
 * test's assertions stay about what a client or an operator can observe.
 */
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { decodeJwt } from 'jose';
import type { AuditEventType } from '../../src/store/port.ts';
import type { InjectResult, TestClient, TestServer, TokenPair } from '../support/harness.ts';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const SUBJECT_TOKEN_TYPE = 'urn:revokd:params:oauth:token-type:subject';

export interface OAuthErrorBody {
  error: string;
  error_description: string;
}

/** Asserts an RFC 6749 §5.2 error answer: exact status, exact code, a description, and `no-store`. */
export function assertOAuthError(response: InjectResult, status: number, code: string): OAuthErrorBody {
  assert.equal(
    response.statusCode,
    status,
    `expected ${status} ${code}, got ${response.statusCode} ${response.body}`,
  );
  const body = response.json<OAuthErrorBody>();
  assert.equal(body.error, code, response.body);
  assert.equal(typeof body.error_description, 'string');
  assert.deepEqual(Object.keys(body).sort(), ['error', 'error_description']);
  assert.equal(response.headers['cache-control'], 'no-store');
  return body;
}

/** A client-credentials access token for `client` (the default client when omitted). */
export async function clientCredentials(
  server: TestServer,
  client: TestClient = server.client,
  fields: Record<string, string | string[]> = {},
): Promise<string> {
  const response = await server.form(
    '/token',
    { grant_type: 'client_credentials', ...fields },
    { authorization: client.basic },
  );
  assert.equal(response.statusCode, 200, response.body);
  return response.json<{ access_token: string }>().access_token;
}

/** POSTs a refresh-token grant. */
export function refresh(
  server: TestServer,
  refreshToken: string,
  client: TestClient = server.client,
  fields: Record<string, string> = {},
): Promise<InjectResult> {
  return server.form(
    '/token',
    { grant_type: 'refresh_token', refresh_token: refreshToken, ...fields },
    { authorization: client.basic },
  );
}

/** Refreshes and expects success. */
export async function refreshOk(
  server: TestServer,
  refreshToken: string,
  client: TestClient = server.client,
): Promise<TokenPair> {
  const response = await refresh(server, refreshToken, client);
  assert.equal(response.statusCode, 200, response.body);
  return response.json<TokenPair>();
}

/** Introspects as `caller` (the resource server, which may introspect any token, when omitted). */
export async function introspect(
  server: TestServer,
  token: string,
  caller: TestClient = server.resourceServer,
  fields: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const response = await server.form('/introspect', { token, ...fields }, { authorization: caller.basic });
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(response.headers['cache-control'], 'no-store');
  return response.json();
}

/** Whether the resource server sees the token as active. */
export async function isActive(server: TestServer, token: string): Promise<boolean> {
  const result = await introspect(server, token);
  if (result.active === false) assert.deepEqual(result, { active: false });
  return result.active === true;
}

/** POSTs to /revoke as `client`. */
export function revoke(
  server: TestServer,
  token: string,
  client: TestClient = server.client,
  fields: Record<string, string> = {},
): Promise<InjectResult> {
  return server.form('/revoke', { token, ...fields }, { authorization: client.basic });
}

/** Every rule in the durable log (pruned rules excluded). */
export async function logRules(server: TestServer) {
  return server.runtime.store.readLog(0, 100_000);
}

/** Calls an admin route with a JSON body (or none) and a Bearer token. */
export function admin(
  server: TestServer,
  method: 'GET' | 'POST',
  url: string,
  token: string | undefined,
  body?: unknown,
): Promise<InjectResult> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return server.app.inject({
    method,
    url,
    headers,
    ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  }) as unknown as Promise<InjectResult>;
}

/** The `sid` and `fid` claims of a session's access token. */
export function sessionIds(accessToken: string): { sid: string; fid: string } {
  const { sid, fid } = decodeJwt(accessToken);
  assert.equal(typeof sid, 'string');
  assert.equal(typeof fid, 'string');
  return { sid: sid as string, fid: fid as string };
}

/** Reads the SQLite file directly (a second, read-only connection; WAL lets it see committed state). */
export function queryStore<T>(server: TestServer, sql: string, ...params: Array<string | number>): T[] {
  const { store } = server.config;
  if (store.kind !== 'sqlite') throw new Error('queryStore reads the SQLite store only');
  const db = new DatabaseSync(store.path, { readOnly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** Refresh tokens of a family that have not been rotated: the chain's surviving heads. */
export function unrotatedTokens(server: TestServer, fid: string): number {
  const [row] = queryStore<{ n: number }>(
    server,
    'SELECT count(*) AS n FROM refresh_tokens WHERE fid = ? AND successor_hash IS NULL',
    fid,
  );
  return row!.n;
}

/**
 * The audit events of a given type (all of them, oldest first), once the events this server recorded after its
 * answers (issuance, introspection) are written.
 */
export async function auditOf(server: TestServer, type: AuditEventType) {
  await server.runtime.audit.flush();
  return server.runtime.store.readAudit({ type, limit: 10_000 });
}
