import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { startServer, tempDataDir } from '../test/support/process.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

/** The walkthrough block of the README: the first ```sh block after the line that says to paste it as is. */
function walkthrough(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('paste this as is');
  assert.ok(start > 0, 'README has a walkthrough');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start));
  assert.ok(block, 'walkthrough is a sh block');
  return block[1]!;
}

test('the README walkthrough works verbatim against a fresh server', async (t) => {
  const dbPath = join(tempDataDir(), 'revokd.db');
  const server = await startServer({ dbPath });
  t.after(() => server.stop());
  // The only change: the walkthrough's fixed address becomes this test's free port.
  const script = `set -euo pipefail\n${walkthrough().replaceAll('http://localhost:8080', server.url)}`;
  const { stdout } = await promisify(execFile)('bash', ['-c', script], {
    cwd: ROOT,
    env: { ...process.env, REVOKD_DB_PATH: dbPath, REVOKD_LOG_LEVEL: 'warn' },
    timeout: 60_000,
  });
  const lines = stdout.trim().split('\n');
  const introspections = lines.filter((l) => l.startsWith('{"active"'));
  assert.equal(introspections.length, 3, stdout);
  assert.match(introspections[0]!, /^\{"active":true,"token_type":"Bearer",.*"sub":"demo"/);
  assert.equal(introspections[1], '{"active":false}');
  assert.equal(introspections[2], '{"active":false}');
  assert.ok(
    lines.includes(
      '{"error":"invalid_grant","error_description":"refresh token is invalid, expired or revoked"}',
    ),
    stdout,
  );
  const audit = lines
    .filter((l) => l.startsWith('{"id"'))
    .map((l) => JSON.parse(l) as { type: string; reason?: string });
  assert.deepEqual(
    audit.map((e) => e.type),
    ['session_opened', 'issued', 'refreshed', 'revoked'],
  );
  assert.equal(audit.at(-1)?.reason, 'password_changed');
});
