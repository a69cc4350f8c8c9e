/**
 * `revokd serve` as an operator runs it: configuration errors stop it before it touches anything, naming the
 * offending key; SIGTERM and SIGINT shut it down cleanly (exit 0) with its state intact for the next start; the
 * data folder is created on first start; a port already in use is a clear error.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import {
  addClientViaCli,
  cliResult,
  freePort,
  type ServerProcess,
  startServer,
  tempDataDir,
} from '../test/support/process.ts';
import { clientCredentials, introspect, mapConcurrent, postForm } from './helpers.ts';

const NO_STACK = /\n\s+at /;

test('an invalid configuration value stops serve before it starts, naming the key', async (t) => {
  const cases: Array<{ env: Record<string, string>; key: RegExp }> = [
    { env: { REVOKD_PORT: 'abc' }, key: /http\.port/ },
    { env: { REVOKD_PORT: '70000' }, key: /http\.port/ },
    { env: { REVOKD_ACCESS_TOKEN_TTL_SECONDS: '-1' }, key: /tokens\.accessTokenTtlSeconds/ },
    {
      env: { REVOKD_ACCESS_TOKEN_TTL_SECONDS: '7200' },
      key: /tokens\.accessTokenTtlSeconds.*maxAccessTokenTtlSeconds/,
    },
    { env: { REVOKD_REFRESH_REUSE_GRACE_SECONDS: 'soon' }, key: /tokens\.refreshReuseGraceSeconds/ },
    { env: { REVOKD_SIGNING_ALGORITHM: 'none' }, key: /signing\.algorithm/ },
    { env: { REVOKD_SIGNING_ALGORITHM: 'HS256' }, key: /signing\.algorithm/ },
    {
      env: { REVOKD_ISSUER: 'https://issuer.example/?x=1' },
      key: /issuer \(set by REVOKD_ISSUER\): must not contain a query/,
    },
    { env: { REVOKD_RATE_LIMIT_ENABLED: 'maybe' }, key: /rateLimit\.enabled/ },
    { env: { REVOKD_LOG_LEVEL: 'loud' }, key: /log\.level/ },
  ];
  const results = await mapConcurrent(cases, 2, async ({ env }) => {
    const dbPath = join(tempDataDir(), 'fresh', 'revokd.db');
    const port = await freePort();
    const result = await cliResult(
      dbPath,
      ['serve'],
      {
        REVOKD_HOST: '127.0.0.1',
        REVOKD_PORT: String(port),
        REVOKD_ISSUER: `http://127.0.0.1:${port}`,
        ...env,
      },
      15_000,
    );
    return { result, dbPath };
  });
  cases.forEach(({ env, key }, i) => {
    const { result, dbPath } = results[i]!;
    const what = JSON.stringify(env);
    assert.equal(result.signal, null, `${what}: serve started instead of refusing the configuration`);
    assert.notEqual(result.code, 0, what);
    assert.match(result.stderr, /invalid configuration/, what);
    assert.match(result.stderr, key, `${what}: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, NO_STACK, `${what}: no stack trace`);
    assert.equal(
      existsSync(dirname(dbPath)),
      false,
      `${what}: nothing is created before the config is valid`,
    );
  });
  t.diagnostic(`${cases.length} invalid values refused`);
});

test('first start creates the data folder; SIGTERM exits 0 and the next start has the same state', async (t) => {
  const dbPath = join(tempDataDir(), 'not', 'yet', 'there', 'revokd.db');
  assert.equal(existsSync(dirname(dbPath)), false);
  const port = await freePort();
  const servers: ServerProcess[] = [];
  t.after(async () => {
    for (const s of servers) await s.kill9();
  });

  const first = await startServer({ dbPath, port });
  servers.push(first);
  assert.ok(existsSync(dbPath), 'the database file and its folders were created');
  const client = await addClientViaCli(dbPath, 'app');
  const token = (await clientCredentials(first.url, client)).access_token;

  // SIGTERM under load: requests are answered (200, or 503 while closing) or refused at connect, never a 500.
  const outcomes = new Map<string, number>();
  let stopping = false;
  const load = Array.from({ length: 4 }, async () => {
    for (;;) {
      let outcome: string;
      try {
        const response = await postForm(`${first.url}/token`, client, { grant_type: 'client_credentials' });
        await response.arrayBuffer();
        outcome = String(response.status);
      } catch {
        outcome = 'connection error';
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (stopping && outcome === 'connection error') return;
    }
  });
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  stopping = true;
  first.child.kill('SIGTERM');
  // Keep-alive connections that were busy at SIGTERM must not hold the exit for the keep-alive timeout (72 s).
  const exit = await Promise.race([
    first.exited,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000).unref()),
  ]);
  const exitMs = Date.now() - started;
  assert.ok(exit, 'SIGTERM exits within 5 s under keep-alive load');
  await Promise.all(load);
  t.diagnostic(`SIGTERM to exit: ${exitMs} ms; outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
  assert.ok((outcomes.get('200') ?? 0) > 0);
  assert.deepEqual(
    [...outcomes.keys()].filter((o) => !['200', '503', 'connection error'].includes(o)),
    [],
    'only 200, 503 or a refused connection',
  );
  assert.deepEqual(exit, { code: 0, signal: null }, first.output());
  assert.doesNotMatch(first.output(), /error|Error/, 'a clean shutdown logs no error');

  // Same database, same port (so the same issuer): the signing key, the client and the token are all there.
  const second = await startServer({ dbPath, port });
  servers.push(second);
  assert.deepEqual(await introspect(second.url, client, token).then((r) => r.active), true);

  // SIGINT (Ctrl-C) is a clean shutdown too.
  second.child.kill('SIGINT');
  assert.deepEqual(await second.exited, { code: 0, signal: null }, second.output());
});

test('a port already in use is a clear error, not a stack trace', async (t) => {
  const dbPath = join(tempDataDir(), 'revokd.db');
  const server = await startServer({ dbPath });
  t.after(() => server.stop());
  const result = await cliResult(
    join(tempDataDir(), 'other.db'),
    ['serve'],
    { REVOKD_HOST: '127.0.0.1', REVOKD_PORT: String(server.port), REVOKD_ISSUER: server.url },
    15_000,
  );
  assert.equal(result.signal, null, 'the second server must not keep running');
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /EADDRINUSE/);
  assert.doesNotMatch(result.stderr, NO_STACK);
  // The first server is unaffected.
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
});
