/**
 * Runs the benchmark suite (bench/) in smoke mode, so it cannot rot: every benchmark and every code path of the
 * harness runs with tiny counts. Asserts that it runs and reports, never a number.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = resolve(import.meta.dirname, '../../..');

test('npm run bench -- --smoke runs every benchmark and writes JSON and markdown results', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'revokd-bench-smoke-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  await promisify(execFile)(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', join(ROOT, 'bench/run.ts'), '--smoke', '--out', out],
    { cwd: ROOT, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8'));
  assert.deepEqual(report.errors, []);
  assert.equal(report.mode, 'smoke');
  assert.equal(report.machine.node, process.version);
  assert.deepEqual(
    report.benchmarks.map((b: { name: string }) => b.name),
    [
      'guard-verify',
      'guard-warm',
      'memory',
      'durable-revocations',
      'propagation',
      'http-resource-server',
      'token-service',
    ],
  );
  for (const bench of report.benchmarks) {
    assert.ok(bench.rows.length > 0, `${bench.name} reports rows`);
    for (const row of bench.rows) {
      if (row.value === undefined) {
        assert.ok(row.note, `${bench.name} ${row.group} ${row.subject}: n/a needs a reason`);
        continue;
      }
      assert.ok(row.value.samples.length >= 1, `${bench.name} ${row.group} ${row.subject} has samples`);
      // Propagation latencies from the revoke response may be negative (a guard rejected the token first).
      const positive = bench.name === 'propagation' || row.value.median > 0;
      assert.ok(Number.isFinite(row.value.median) && positive, `${row.group} ${row.subject}`);
      if (row.ratio) assert.ok(Number.isFinite(row.ratio.value.median));
      if (row.target) assert.equal(typeof row.target.met, 'boolean');
    }
  }
  const markdown = readFileSync(join(out, 'latest.md'), 'utf8');
  assert.match(markdown, new RegExp(`Node ${process.version.replaceAll('.', '\\.')}`));
  assert.match(markdown, /## Targets/);
  assert.match(markdown, /n\/a \(HS256 refused by design\)/);
});
