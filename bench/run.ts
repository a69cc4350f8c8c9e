/**
 * The revokd benchmark suite.
 *
 *   npm run bench                      every benchmark, full counts (a few minutes); writes bench/results/latest.{json,md}
 *   npm run bench -- guard-verify      one (or several) by name; writes bench/results/<names>.{json,md}
 *   npm run bench -- --quick           smaller counts
 *   npm run bench -- --smoke           tiny counts: every code path in seconds, numbers meaningless (run by the tests)
 *   npm run bench -- --out DIR         write the results elsewhere
 *
 * Progress goes to stderr. The exit status is non-zero only when a benchmark failed to run, never for a number.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as durableRevocations from './durable-revocations.ts';
import * as guardVerify from './guard-verify.ts';
import * as guardWarm from './guard-warm.ts';
import { describeMachine } from './lib/machine.ts';
import { stderrProgress } from './lib/progress.ts';
import { type Report, renderMarkdown } from './lib/report.ts';
import type { Benchmark, BenchResult, Mode } from './lib/types.ts';
import * as memory from './memory.ts';
import * as propagation from './propagation.ts';

export const BENCHMARKS: readonly Benchmark[] = [
  guardVerify,
  guardWarm,
  memory,
  durableRevocations,
  propagation,
  await import('./http-resource-server.ts'),
  await import('./token-service.ts'),
];

const USAGE = `usage: node bench/run.ts [--smoke | --quick] [--out DIR] [NAME...]
benchmarks: ${BENCHMARKS.map((b) => b.name).join(', ')}`;

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.smoke && values.quick) {
    process.stderr.write(`--smoke and --quick exclude each other\n${USAGE}\n`);
    return 2;
  }
  const unknown = positionals.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark: ${unknown.join(', ')}\n${USAGE}\n`);
    return 2;
  }
  const mode: Mode = values.smoke ? 'smoke' : values.quick ? 'quick' : 'full';
  const selected =
    positionals.length === 0 ? BENCHMARKS : BENCHMARKS.filter((b) => positionals.includes(b.name));
  const out = resolve(values.out ?? join(import.meta.dirname, 'results'));

  const startedAt = performance.now();
  const date = new Date().toISOString();
  const results: BenchResult[] = [];
  const errors: Array<{ benchmark: string; error: string }> = [];
  for (const bench of selected) {
    const progress = stderrProgress(bench.name, startedAt);
    progress.step(`start (${mode})`);
    try {
      results.push(await bench.run({ mode, progress }));
      progress.step('done');
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      errors.push({ benchmark: bench.name, error: message });
      progress.step(`FAILED: ${message}`);
    }
  }
  const report: Report = {
    date,
    mode,
    durationSeconds: (performance.now() - startedAt) / 1000,
    machine: describeMachine(),
    benchmarks: results,
  };
  const base = positionals.length === 0 ? 'latest' : selected.map((b) => b.name).join('+');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, `${base}.json`), `${JSON.stringify({ ...report, errors }, null, 2)}\n`);
  const markdown = renderMarkdown(report);
  writeFileSync(join(out, `${base}.md`), markdown);
  process.stdout.write(markdown);
  process.stderr.write(`results: ${join(out, `${base}.json`)} and ${join(out, `${base}.md`)}\n`);
  return errors.length === 0 ? 0 : 1;
}

function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      smoke: { type: 'boolean' },
      quick: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

process.exitCode = await main();
