/**
 * Issuance (client credentials) and introspection change no state: their audit events are written after the
 * answer (AuditTrail). These tests prove the other half of that trade-off: the events still land, a store that
 * cannot write them fails no request (the loss is counted), and a graceful shutdown loses none.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt } from 'jose';
import type { AuditLoss } from '../../src/services/audit-trail.ts';
import type { AuditEventType } from '../../src/store/port.ts';
import { startTestServer, type TestServer } from '../support/harness.ts';
import { clientCredentials, introspect } from './helpers.ts';

/** The store's audit events of a type, read as they are, without asking the trail to write what it holds. */
function stored(server: TestServer, type: AuditEventType) {
  return server.runtime.store.readAudit({ type, limit: 100 });
}

async function eventually<T>(what: string, read: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** The SQLite file of a test server. */
function sqlitePath(server: TestServer): string {
  const { store } = server.config;
  if (store.kind !== 'sqlite') throw new Error('these tests read the SQLite store');
  return store.path;
}

/** Makes the SQLite file refuse audit rows of one type (a second connection adds a trigger): a real write failure. */
function refuseAuditRows(server: TestServer, type: AuditEventType): void {
  const db = new DatabaseSync(sqlitePath(server));
  try {
    db.exec(`CREATE TRIGGER refuse_${type} BEFORE INSERT ON audit WHEN NEW.type = '${type}'
      BEGIN SELECT RAISE(ABORT, 'audit refused'); END;`);
  } finally {
    db.close();
  }
}

test('the audit events of an issuance and an introspection land after the answer, on their own', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const token = await clientCredentials(server);
  const { jti } = decodeJwt(token);
  const issued = await eventually('the issued event', async () =>
    (await stored(server, 'issued')).find((e) => e.jti === jti),
  );
  assert.equal(issued.clientId, server.client.id);
  assert.deepEqual(issued.detail, { grant: 'client_credentials' });

  assert.equal((await introspect(server, token)).active, true);
  const introspected = await eventually('the introspected event', async () =>
    (await stored(server, 'introspected')).find((e) => e.jti === jti),
  );
  assert.equal(introspected.actor, server.resourceServer.id);
  assert.deepEqual(introspected.detail, { active: true });
});

test('a store that cannot write the audit fails neither issuance nor introspection; the loss is counted', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const losses: AuditLoss[] = [];
  server.runtime.audit.onLoss((loss) => losses.push(loss));
  refuseAuditRows(server, 'issued');
  refuseAuditRows(server, 'introspected');

  const token = await clientCredentials(server);
  assert.equal((await introspect(server, token)).active, true);
  await server.runtime.audit.flush();

  // Both events may share one store write (and fail together): what counts is that both are reported lost.
  assert.ok(losses.every((l) => l.reason === 'write_failed'));
  assert.equal(
    losses.reduce((n, l) => n + l.events, 0),
    2,
  );
  assert.deepEqual(await stored(server, 'issued'), []);
  assert.deepEqual(await stored(server, 'introspected'), []);
  const metrics = (await server.app.inject({ method: 'GET', url: '/metrics' })).body;
  assert.match(metrics, /^revokd_audit_events_lost_total 2$/m);
  assert.match(metrics, /^revokd_audit_events_pending 0$/m);

  // A durable operation is not affected: a revocation and its audit event still commit.
  const revoked = await server.form('/revoke', { token }, { authorization: server.client.basic });
  assert.equal(revoked.statusCode, 200);
  assert.equal((await stored(server, 'revoked')).length, 1);
});

test('closing the runtime writes the audit events recorded before it', async (t) => {
  const server = await startTestServer();
  t.after(() => rmSync(server.dir, { recursive: true, force: true }));
  const token = await clientCredentials(server);
  await introspect(server, token);
  await server.app.close();
  await server.runtime.close();

  const db = new DatabaseSync(sqlitePath(server), { readOnly: true });
  t.after(() => db.close());
  const types = db
    .prepare('SELECT type FROM audit WHERE jti = ? ORDER BY id')
    .all(decodeJwt(token).jti as string)
    .map((row) => row.type);
  assert.deepEqual(types, ['issued', 'introspected']);
});
