/**
 * OpenID Connect Back-Channel Logout, end to end: revokd signs and POSTs logout tokens to a real HTTP server on a
 * loopback port (the client's backchannelLogoutUri), which validates them with the guard's receiver.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  BACKCHANNEL_LOGOUT_EVENT,
  type BackchannelLogoutResponse,
  createBackchannelLogoutReceiver,
  GUARD_ALGORITHMS,
  KeySet,
  type Rule,
} from '@revokd/guard';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { ConfigInput } from '../../src/config/schema.ts';
import { createRuntime } from '../../src/runtime.ts';
import { ISSUER, startTestServer, type TestClient, type TestServer } from '../support/harness.ts';
import { admin, auditOf, queryStore, sessionIds } from './helpers.ts';

/** Small retry settings, so failures settle within a test. */
const FAST: ConfigInput['backchannelLogout'] = {
  timeoutMs: 300,
  maxAttempts: 3,
  initialBackoffMs: 20,
  maxBackoffMs: 100,
  pollIntervalMs: 50,
};

interface Arrival {
  readonly contentType: string | undefined;
  readonly token: string;
  /** What the guard's receiver answered (before any scripted status replaced it). */
  readonly answer: BackchannelLogoutResponse;
}

interface RelyingParty {
  readonly url: string;
  readonly arrivals: Arrival[];
  /** Rules the guard's receiver derived from valid tokens. */
  readonly rules: Rule[];
  /** Statuses to answer instead of the receiver's, first to last. */
  readonly scripted: number[];
  /** While set, requests wait for it before being answered. */
  hold: Promise<void> | undefined;
}

/** A relying party's back-channel logout endpoint: node:http on 127.0.0.1, validating with the guard's receiver. */
async function startRelyingParty(
  t: { after(fn: () => unknown): void },
  server: TestServer,
  clientId: string,
): Promise<RelyingParty> {
  const keys = await KeySet.fromJwks(server.runtime.keyring.jwks, GUARD_ALGORITHMS);
  const rules: Rule[] = [];
  const receiver = createBackchannelLogoutReceiver({
    issuer: ISSUER,
    audience: clientId,
    keys,
    guard: { revokeLocally: (rule) => rules.push(rule) },
  });
  const rp: RelyingParty = { url: '', arrivals: [], rules, scripted: [], hold: undefined };
  const http = createServer(async (request, response) => {
    const body = await readBody(request);
    const contentType = request.headers['content-type'];
    const answer = await receiver.handle(body, contentType);
    rp.arrivals.push({ contentType, token: new URLSearchParams(body).get('logout_token') ?? '', answer });
    if (rp.hold) await rp.hold;
    const status = rp.scripted.shift() ?? answer.status;
    response.writeHead(status, answer.headers).end(status === answer.status ? answer.body : '');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  );
  return Object.assign(rp, { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/logout` });
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A loopback URL where nothing listens. */
async function deadUrl(): Promise<string> {
  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  await new Promise<void>((resolve) => http.close(() => resolve()));
  return `http://127.0.0.1:${port}/logout`;
}

async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 5000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function setup(t: { after(fn: () => unknown): void }, config: Partial<ConfigInput> = {}) {
  const server = await startTestServer({ config: { backchannelLogout: FAST, ...config } });
  t.after(() => server.close());
  return server;
}

/** Registers client `id` with its logout endpoint at `uri`. */
function addRelyingParty(server: TestServer, id: string, uri: string): Promise<TestClient> {
  return server.addClient(id, { backchannelLogoutUri: uri });
}

async function revokeSession(server: TestServer, sid: string): Promise<void> {
  const response = await admin(server, 'POST', `/admin/sessions/${sid}/revoke`, await server.adminToken(), {
    reason: 'logout',
  });
  assert.equal(response.statusCode, 200, response.body);
}

const outboxRows = (server: TestServer) =>
  queryStore<{ sid: string; client_id: string; uri: string; attempts: number }>(
    server,
    'SELECT sid, client_id, uri, attempts FROM logout_outbox ORDER BY id',
  );

test('revoking a session sends exactly one logout token, valid per the guard receiver', async (t) => {
  const server = await setup(t);
  const rp = await startRelyingParty(t, server, 'rp');
  const client = await addRelyingParty(server, 'rp', rp.url);
  const { sid } = sessionIds((await server.login('alice', { client })).access_token);
  // A session of a client without a logout URI ends too, with no delivery.
  const quiet = sessionIds((await server.login('alice')).access_token);

  await revokeSession(server, sid);
  await revokeSession(server, quiet.sid);
  const [delivered] = await waitFor('logout_delivered', () =>
    auditOf(server, 'logout_delivered').then((a) => a[0] && a),
  );
  // Give a duplicate every chance to show up.
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(rp.arrivals.length, 1);

  const [arrival] = rp.arrivals;
  assert.equal(arrival!.contentType, 'application/x-www-form-urlencoded');
  assert.deepEqual(arrival!.answer, { status: 200, headers: { 'cache-control': 'no-store' }, body: '' });
  assert.deepEqual(rp.rules, [{ kind: 'session', sid, expiresAtMs: rp.rules[0]!.expiresAtMs }]);
  const header = decodeProtectedHeader(arrival!.token);
  assert.equal(header.typ, 'logout+jwt');
  assert.equal(header.kid, server.runtime.keyring.activeKid);
  const claims = decodeJwt(arrival!.token);
  assert.deepEqual(Object.keys(claims).sort(), ['aud', 'events', 'exp', 'iat', 'iss', 'jti', 'sid', 'sub']);
  assert.deepEqual(
    [claims.iss, claims.aud, claims.sub, claims.sid, claims.events],
    [ISSUER, 'rp', 'alice', sid, { [BACKCHANNEL_LOGOUT_EVENT]: {} }],
  );
  assert.equal(claims.exp! - claims.iat!, 120);

  assert.deepEqual(
    [
      delivered!.actor,
      delivered!.subject,
      delivered!.clientId,
      delivered!.sid,
      delivered!.jti,
      delivered!.reason,
    ],
    ['system', 'alice', 'rp', sid, claims.jti, 'logout'],
  );
  assert.deepEqual(delivered!.detail, { attempts: 1, status: 200 });
  assert.deepEqual(outboxRows(server), []);
  assert.deepEqual(await auditOf(server, 'logout_failed'), []);
});

test('a subject revocation ending two sessions sends two tokens, one per session', async (t) => {
  const server = await setup(t);
  const rp = await startRelyingParty(t, server, 'rp');
  const client = await addRelyingParty(server, 'rp', rp.url);
  const first = sessionIds((await server.login('alice', { client })).access_token).sid;
  const second = sessionIds((await server.login('alice', { client })).access_token).sid;
  await server.login('bob', { client });

  const response = await admin(server, 'POST', '/admin/subjects/alice/revoke', await server.adminToken(), {
    reason: 'password_changed',
  });
  assert.equal(response.statusCode, 200, response.body);
  await waitFor('two deliveries', async () => (await auditOf(server, 'logout_delivered')).length === 2);
  await new Promise((resolve) => setTimeout(resolve, 100));

  assert.equal(rp.arrivals.length, 2);
  assert.ok(rp.arrivals.every((a) => a.answer.status === 200));
  const claims = rp.arrivals.map((a) => decodeJwt(a.token));
  assert.deepEqual(claims.map((c) => c.sid).sort(), [first, second].sort());
  assert.ok(claims.every((c) => c.sub === 'alice' && c.aud === 'rp'));
  assert.notEqual(claims[0]!.jti, claims[1]!.jti);
  const audit = await auditOf(server, 'logout_delivered');
  assert.ok(audit.every((e) => e.reason === 'password_changed'));
});

test('a receiver answering 500 twice, then 200: delivered on the third attempt, with a fresh token each time', async (t) => {
  const server = await setup(t);
  const rp = await startRelyingParty(t, server, 'rp');
  rp.scripted.push(500, 500);
  const client = await addRelyingParty(server, 'rp', rp.url);
  const { sid } = sessionIds((await server.login('alice', { client })).access_token);

  await revokeSession(server, sid);
  const [delivered] = await waitFor('logout_delivered', () =>
    auditOf(server, 'logout_delivered').then((a) => a[0] && a),
  );
  assert.deepEqual(delivered!.detail, { attempts: 3, status: 200 });
  assert.equal(rp.arrivals.length, 3);
  // Every attempt carried a valid token with its own jti (the receiver's replay cache never fired).
  assert.ok(rp.arrivals.every((a) => a.answer.status === 200));
  assert.equal(new Set(rp.arrivals.map((a) => decodeJwt(a.token).jti)).size, 3);
  assert.equal(delivered!.jti, decodeJwt(rp.arrivals[2]!.token).jti);
  assert.deepEqual(outboxRows(server), []);
  assert.deepEqual(await auditOf(server, 'logout_failed'), []);
});

test('a receiver that is down: the failure is recorded after maxAttempts, and the outbox is cleared', async (t) => {
  const server = await setup(t);
  const client = await addRelyingParty(server, 'rp', await deadUrl());
  const { sid } = sessionIds((await server.login('alice', { client })).access_token);

  await revokeSession(server, sid);
  const [failed] = await waitFor('logout_failed', () =>
    auditOf(server, 'logout_failed').then((a) => a[0] && a),
  );
  assert.deepEqual(
    [failed!.actor, failed!.subject, failed!.clientId, failed!.sid, failed!.reason],
    ['system', 'alice', 'rp', sid, 'logout'],
  );
  assert.deepEqual(failed!.detail, { attempts: 3, error: 'network_error:ECONNREFUSED' });
  assert.deepEqual(outboxRows(server), []);
  assert.deepEqual(await auditOf(server, 'logout_delivered'), []);
});

test('a receiver that keeps failing with an HTTP error: recorded with the last status', async (t) => {
  const server = await setup(t, { backchannelLogout: { ...FAST, maxAttempts: 2 } });
  const rp = await startRelyingParty(t, server, 'rp');
  rp.scripted.push(503, 400);
  const client = await addRelyingParty(server, 'rp', rp.url);
  await revokeSession(server, sessionIds((await server.login('alice', { client })).access_token).sid);
  const [failed] = await waitFor('logout_failed', () =>
    auditOf(server, 'logout_failed').then((a) => a[0] && a),
  );
  assert.deepEqual(failed!.detail, { attempts: 2, error: 'http_400', status: 400 });
  assert.equal(rp.arrivals.length, 2);
});

test('crash safety: the outbox row commits with the revocation, before delivery; after a crash a restart delivers it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'revokd-bcl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = { kind: 'sqlite' as const, path: join(dir, 'revokd.db') };
  const server = await startTestServer({ config: { backchannelLogout: FAST, store } });
  let closed = false;
  t.after(() => (closed ? undefined : server.close()));
  const rp = await startRelyingParty(t, server, 'rp');
  let release!: () => void;
  rp.hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  t.after(() => release());
  const client = await addRelyingParty(server, 'rp', rp.url);
  const { sid } = sessionIds((await server.login('alice', { client })).access_token);

  await revokeSession(server, sid);
  // Durable as soon as the revocation is acknowledged, before any delivery settled it.
  assert.deepEqual(
    outboxRows(server).map((r) => [r.sid, r.client_id, r.uri]),
    [[sid, 'rp', rp.url]],
  );
  await waitFor('the first attempt to arrive', () => rp.arrivals.length === 1);

  // The process dies mid-delivery: the attempt in flight is abandoned, unsettled.
  closed = true;
  await server.close();
  assert.deepEqual(
    outboxRows(server).map((r) => [r.sid, r.attempts]),
    [[sid, 1]],
  );
  assert.deepEqual(queryStore(server, "SELECT id FROM audit WHERE type LIKE 'logout_%'"), []);
  rp.hold = undefined;
  release();

  const restarted = await createRuntime(server.config, { follow: true });
  t.after(() => restarted.close());
  const [delivered] = await waitFor('logout_delivered after restart', async () => {
    const events = await restarted.store.readAudit({ type: 'logout_delivered', limit: 10 });
    return events[0] && events;
  });
  assert.equal(delivered!.sid, sid);
  assert.deepEqual(delivered!.detail, { attempts: 2, status: 200 });
  assert.equal(rp.arrivals.length, 2);
  assert.ok(rp.arrivals.every((a) => a.answer.status === 200));
  assert.deepEqual(outboxRows(server), []);
});

test('a revocation made by another process (the CLI) is delivered by the server from the outbox', async (t) => {
  const server = await setup(t);
  const rp = await startRelyingParty(t, server, 'rp');
  const client = await addRelyingParty(server, 'rp', rp.url);
  const { sid } = sessionIds((await server.login('alice', { client })).access_token);

  const cli = await createRuntime(server.config, { follow: false, actor: 'cli' });
  assert.equal(cli.backchannelLogout, undefined, 'the CLI sends nothing itself');
  await cli.revocation.revoke({ targets: [{ kind: 'session', sid }], reason: 'logout', actor: 'cli' });
  await cli.close();

  const [delivered] = await waitFor('logout_delivered', () =>
    auditOf(server, 'logout_delivered').then((a) => a[0] && a),
  );
  assert.equal(delivered!.sid, sid);
  assert.equal(rp.arrivals.length, 1);
  assert.equal(rp.arrivals[0]!.answer.status, 200);
});
