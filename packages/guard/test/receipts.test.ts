/** Receipts: the guard names itself on the stream and reports the cursor it has applied, off the hot path. */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { createGuard, type GuardOptions } from '../src/guard.ts';
import { BASE, CLIENT, FakeServer, waitFor } from './support/fake-server.ts';
import { startGuard } from './support/guard-setup.ts';
import { AUDIENCE, makeKey, NOW_MS } from './support/keys.ts';

const key = await makeKey('EdDSA', 'k1');
const token = (cursor: number, jti = `jti-${cursor}`) => ({
  cursor,
  rule: { kind: 'token' as const, jti, expiresAtMs: NOW_MS + 1e6 },
});

async function live(t: Pick<TestContext, 'after'>, options: Partial<GuardOptions> = {}) {
  const { server, guard, clock } = startGuard(t, key, { guardId: 'api-1', ...options });
  const stream = await server.stream(0);
  stream.heartbeat(0);
  await guard.ready();
  return { server, guard, stream, clock };
}

test('the stream names the guard and asks for heartbeats within its staleness bound', async (t) => {
  const { server, guard } = await live(t, { maxStalenessMs: 1500 });
  const url = new URL(`${BASE}${server.requests.find((r) => r.startsWith('/revocations/stream'))}`);
  assert.equal(url.searchParams.get('guard_id'), 'api-1');
  assert.equal(url.searchParams.get('heartbeat_ms'), '375');
  assert.equal(guard.health().guardId, 'api-1');
});

test('the first heartbeat is reported; applied entries are reported, coalesced', async (t) => {
  const { server, guard, stream } = await live(t);
  await waitFor(() => server.receipts.length === 1, { what: 'receipt of the first heartbeat' });
  assert.deepEqual(server.receipts, [{ guardId: 'api-1', cursor: 0 }]);
  assert.equal(guard.health().reportedCursor, 0);

  // Three frames in one chunk: one receipt, for the last cursor.
  stream.send(
    [[token(1)], [token(2)], [token(3)]]
      .map((entries) => `event: entries\ndata: ${JSON.stringify({ entries })}\n\n`)
      .join(''),
  );
  await waitFor(() => guard.health().reportedCursor === 3, { what: 'receipt of cursor 3' });
  assert.deepEqual(server.receipts.slice(1), [{ guardId: 'api-1', cursor: 3 }]);

  // A heartbeat with nothing new to report sends nothing (until the refresh period).
  stream.heartbeat(3);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(server.receipts.length, 2);
});

test('a failed receipt is not retried in a loop: the next batch or heartbeat reports again', async (t) => {
  const { server, guard, stream } = await live(t);
  await waitFor(() => server.receipts.length === 1);
  server.receiptStatus = 503;
  stream.entries([token(1)]);
  await waitFor(() => server.receipts.length === 2);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(server.receipts.length, 2, 'no retry loop');
  assert.equal(guard.health().reportedCursor, 0);
  // Decisions never wait for receipts.
  assert.equal(guard.health().cursor, 1);

  server.receiptStatus = 204;
  stream.heartbeat(1);
  await waitFor(() => guard.health().reportedCursor === 1, { what: 'reported on the heartbeat' });
});

test('a guard without receipts refused still follows the feed', async (t) => {
  const { server, guard, stream } = await live(t);
  server.receiptStatus = 404;
  stream.entries([token(1), token(2)]);
  await waitFor(() => guard.health().cursor === 2);
  assert.equal(guard.health().state, 'live');
  assert.equal(guard.health().reportedCursor, undefined);
});

test('guardId: a default is generated, and an invalid one is a configuration error', async (t) => {
  const server = new FakeServer();
  const base = { issuer: BASE, audience: AUDIENCE, clientId: CLIENT.id, clientSecret: CLIENT.secret };
  const guard = createGuard({ ...base, fetch: server.fetch });
  t.after(() => guard.close());
  assert.match(guard.health().guardId, new RegExp(`^[\\x21-\\x7E]+:${process.pid}:[0-9a-f]{8}$`));
  for (const guardId of ['', 'has space', 'x'.repeat(129), 'é']) {
    assert.throws(() => createGuard({ ...base, fetch: server.fetch, guardId }), {
      code: 'REVOKD_GUARD_CONFIG',
      message: /guardId/,
    });
  }
});
