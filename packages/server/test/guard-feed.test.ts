/**
 * The guard against the real server on a real loopback port: revocations reach it through the event stream,
 * it resumes from its cursor after losing the connection, and not-before rules split old and new tokens.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { test } from 'node:test';
import { GUARD_CHANNEL, type GuardEvent } from '@revokd/guard';
import { CuttableProxy } from './support/cuttable-proxy.ts';
import { guardFor, listenOnLoopback } from './support/guard-harness.ts';
import { startTestServer } from './support/harness.ts';
import { within } from './support/poll.ts';

/** Propagation bound asserted here: far above the expected milliseconds, low enough to catch polling. */
const PROPAGATION_BOUND_MS = 2000;

function recordEvents(t: { after(fn: () => void): void }): GuardEvent[] {
  const seen: GuardEvent[] = [];
  const listener = (message: unknown) => seen.push(message as GuardEvent);
  subscribe(GUARD_CHANNEL, listener);
  t.after(() => unsubscribe(GUARD_CHANNEL, listener));
  return seen;
}

test('a token is accepted, revoked through /revoke, and rejected by the guard within the bound', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const base = await listenOnLoopback(server);
  const guard = guardFor(server, base);
  t.after(() => guard.close());
  await guard.ready();
  assert.equal(guard.health().state, 'live');

  const { access_token: token } = await server.login('alice');
  const accepted = guard.check(`Bearer ${token}`);
  assert.ok(accepted.ok);
  assert.equal(accepted.claims.sub, 'alice');

  const revoked = await server.form('/revoke', { token }, { authorization: server.client.basic });
  assert.equal(revoked.statusCode, 200);
  const elapsed = await within(PROPAGATION_BOUND_MS, 'revocation reaches the guard', async () => {
    const decision = guard.check(`Bearer ${token}`);
    return !decision.ok && decision.reason === 'revoked';
  });
  t.diagnostic(`revoke response → rejected by the guard: ${elapsed.toFixed(1)} ms`);
  assert.deepEqual(guard.check(`Bearer ${token}`), {
    ok: false,
    status: 401,
    error: 'invalid_token',
    reason: 'revoked',
    revokedBy: 'token',
  });
  assert.equal(guard.health().cursor, server.runtime.revocation.index.cursor);
});

test('a guard that lost its connection resumes from its cursor and catches up', async (t) => {
  const seen = recordEvents(t);
  const server = await startTestServer();
  t.after(() => server.close());
  const direct = await listenOnLoopback(server);
  const proxy = new CuttableProxy(Number(new URL(direct).port));
  t.after(() => proxy.cut());
  const base = await proxy.start();
  const guard = guardFor(server, base, { jwksUri: `${direct}/jwks.json` });
  t.after(() => guard.close());
  await guard.ready();

  const first = await server.login('dave');
  const second = await server.login('erin');
  await server.form('/revoke', { token: first.access_token }, { authorization: server.client.basic });
  await within(PROPAGATION_BOUND_MS, 'first revocation', () => !guard.check(first.access_token).ok);
  const cursorBeforeCut = guard.health().cursor;
  const snapshotsBeforeCut = seen.filter((e) => e.type === 'snapshot').length;

  await proxy.cut();
  // Revoked while the guard cannot hear about it: it still accepts the token until it is back.
  await server.form('/revoke', { token: second.access_token }, { authorization: server.client.basic });
  await within(PROPAGATION_BOUND_MS, 'the cut is noticed', async () => guard.health().state !== 'live');
  assert.equal(guard.check(second.access_token).ok, true);

  await proxy.start();
  await within(5000, 'the guard catches up after reconnecting', async () => {
    const decision = guard.check(second.access_token);
    return !decision.ok && decision.reason === 'revoked';
  });
  await within(PROPAGATION_BOUND_MS, 'live again', async () => guard.health().state === 'live');
  assert.equal(guard.health().cursor, server.runtime.revocation.index.cursor);
  assert.equal(
    seen.filter((e) => e.type === 'snapshot').length,
    snapshotsBeforeCut,
    'resumed from its cursor, without reloading a snapshot',
  );
  assert.ok(seen.some((e) => e.type === 'connected' && e.after === cursorBeforeCut));
  assert.ok(guard.health().reconnects >= 1);
});

test('a subject revocation rejects the old tokens; a token issued right after is accepted', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const base = await listenOnLoopback(server);
  const guard = guardFor(server, base);
  t.after(() => guard.close());
  await guard.ready();

  const before = [await server.login('carol'), await server.login('carol')];
  const bystander = await server.login('frank');
  for (const pair of before) assert.equal(guard.check(`Bearer ${pair.access_token}`).ok, true);

  const response = await server.app.inject({
    method: 'POST',
    url: '/admin/subjects/carol/revoke',
    headers: { authorization: `Bearer ${await server.adminToken()}`, 'content-type': 'application/json' },
    payload: { reason: 'password_changed' },
  });
  assert.equal(response.statusCode, 200, response.body);
  const after = await server.login('carol');

  await within(PROPAGATION_BOUND_MS, 'subject rule reaches the guard', async () => {
    const decision = guard.check(`Bearer ${before[0]!.access_token}`);
    return !decision.ok && decision.reason === 'revoked';
  });
  for (const pair of before) {
    assert.deepEqual(guard.check(`Bearer ${pair.access_token}`), {
      ok: false,
      status: 401,
      error: 'invalid_token',
      reason: 'revoked',
      revokedBy: 'subject',
    });
  }
  const fresh = guard.check(`Bearer ${after.access_token}`);
  assert.ok(fresh.ok, 'a token issued right after the rule is valid, even in the same second');
  assert.equal(guard.check(`Bearer ${bystander.access_token}`).ok, true);
});

test('the stream endpoint: authentication, Last-Event-ID, and reset for a cursor beyond the log', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const base = await listenOnLoopback(server);
  const other = await server.addClient('no-introspect');

  const noAuth = await fetch(`${base}/revocations/stream?after=0`);
  assert.equal(noAuth.status, 401);
  assert.match(noAuth.headers.get('www-authenticate') ?? '', /^Basic /);
  const denied = await fetch(`${base}/revocations/stream?after=0`, {
    headers: { authorization: other.basic },
  });
  assert.equal(denied.status, 403);
  const bad = await fetch(`${base}/revocations/stream?after=-1`, {
    headers: { authorization: server.resourceServer.basic },
  });
  assert.equal(bad.status, 400);
  const missing = await fetch(`${base}/revocations/stream`, {
    headers: { authorization: server.resourceServer.basic },
  });
  assert.equal(missing.status, 400);

  // A cursor the server never issued: the log was replaced; the guard must reload a snapshot.
  const ahead = await fetch(`${base}/revocations/stream?after=999`, {
    headers: { authorization: server.resourceServer.basic },
  });
  assert.equal(ahead.status, 200);
  assert.match(ahead.headers.get('content-type') ?? '', /^text\/event-stream/);
  assert.equal(await ahead.text(), 'event: reset\ndata: {"reason":"cursor_ahead","cursor":0}\n\n');

  // Backlog then heartbeat, resuming from Last-Event-ID.
  const { access_token: token } = await server.login('gina');
  await server.form('/revoke', { token }, { authorization: server.client.basic });
  const controller = new AbortController();
  t.after(() => controller.abort());
  const stream = await fetch(`${base}/revocations/stream`, {
    headers: { authorization: server.resourceServer.basic, 'last-event-id': '0' },
    signal: controller.signal,
  });
  assert.equal(stream.status, 200);
  assert.equal(stream.headers.get('cache-control'), 'no-store');
  const reader = stream.body!.getReader();
  let text = '';
  while (!text.includes('event: heartbeat')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  assert.match(text, /^event: entries\nid: 1\ndata: \{"entries":\[\{"cursor":1,"rule":\{"kind":"token"/);
  assert.match(text, /event: heartbeat\ndata: \{"cursor":1,"serverTimeMs":\d+\}\n\n$/);
  controller.abort();
});
