/**
 * Memory and start-up at 1M active rules:
 * - bytes per active token rule in the guard's `RevocationIndex`, next to a plain `Set<string>` of the same UUID
 *   jtis: growth of the JS heap plus ArrayBuffer memory (the index's fingerprint tables are typed arrays, outside the
 *   JS heap), measured in a fresh child process with `--expose-gc` (bench/lib/heap-probe.ts), with the jti strings
 *   the structure keeps alive (what holding a rule costs a guard) and without them (the table alone);
 * - guard snapshot load: `JSON.parse` of the snapshot body + `parseSnapshot` + `index.reset` + `prune`, as the
 *   guard's feed follower does once the body is read; the first load in a fresh process (start-up) and later ones;
 * - server snapshot serve: `SqliteStore.snapshot()` on a 1M-rule SQLite file, and the `JSON.stringify` of the body.
 *
 * Targets: ≤ 32 B per active token rule; a guard loads a 1M-rule snapshot in ≤ 1 s.
 * Reproduce: `npm run bench -- memory`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SqliteStore } from '../packages/server/src/store/sqlite/sqlite-store.ts';
import { runChild } from './lib/child.ts';
import { timeSeconds } from './lib/measure.ts';
import { judge } from './lib/report.ts';
import { countLabel, tokenRule } from './lib/rules.ts';
import { summarize } from './lib/stats.ts';
import type { BenchOptions, BenchResult, Progress, Row } from './lib/types.ts';
import { byMode } from './lib/types.ts';

export const name = 'memory';
export const title = 'Memory and start-up';

const INDEX = 'RevocationIndex';
/** Heap bytes per entry (see bench/lib/heap-probe.ts). */
interface HeapPerEntry {
  readonly total: number;
  readonly structure: number;
}

const SET = 'Set<string>';
const BYTES_TARGET = 32;
const LOAD_TARGET_MS = 1000;

export async function run({ mode, progress }: BenchOptions): Promise<BenchResult> {
  const rules = byMode(mode, { full: 1_000_000, quick: 1_000_000, smoke: 10_000 });
  const heapRuns = byMode(mode, { full: 5, quick: 3, smoke: 1 });
  const loadProcesses = byMode(mode, { full: 3, quick: 2, smoke: 1 });
  const loadsPerProcess = byMode(mode, { full: 3, quick: 2, smoke: 2 });
  const serveSamples = byMode(mode, { full: 5, quick: 3, smoke: 2 });
  const label = countLabel(rules);
  const rows: Row[] = [];

  // Bytes per rule: one child per measurement, the two structures alternating so each pair shares conditions.
  const heap = { index: [] as HeapPerEntry[], set: [] as HeapPerEntry[] };
  for (let i = 0; i < heapRuns; i++) {
    progress.step(`heap per entry at ${label}: run ${i + 1}/${heapRuns}`);
    heap.index.push(await runChild('heap-probe.ts', ['index', String(rules)], ['--expose-gc']));
    heap.set.push(await runChild('heap-probe.ts', ['set', String(rules)], ['--expose-gc']));
  }
  for (const [part, text] of [
    ['total', 'incl. jti strings'],
    ['structure', 'table only'],
  ] as const) {
    const group = `${label} token rules · B/rule, ${text}`;
    const ratios = heap.index.map((x, i) => x[part] / heap.set[i]![part]);
    rows.push({
      group,
      subject: INDEX,
      unit: 'B/rule',
      value: summarize(heap.index.map((x) => x[part])),
      ratio: { to: SET, value: summarize(ratios) },
      ...(part === 'total'
        ? {
            target: {
              text: `≤ ${BYTES_TARGET} B/rule`,
              met: judge(summarize(heap.index.map((x) => x.total)), '<=', BYTES_TARGET),
            },
          }
        : {}),
    });
    rows.push({ group, subject: SET, unit: 'B/rule', value: summarize(heap.set.map((x) => x[part])) });
  }

  // Guard snapshot load: the first load of each fresh process is what start-up costs.
  const loads: Array<Array<Record<string, number>>> = [];
  for (let i = 0; i < loadProcesses; i++) {
    progress.step(`guard snapshot load of ${label} rules: process ${i + 1}/${loadProcesses}`);
    loads.push(
      await runChild(
        'heap-probe.ts',
        ['snapshot-load', String(rules), String(loadsPerProcess)],
        ['--expose-gc'],
      ),
    );
  }
  const first = loads.map((l) => l[0]!);
  const later = loads.flatMap((l) => l.slice(1));
  const loadGroup = `${label}-rule snapshot · guard load`;
  const firstTotal = summarize(first.map((x) => x.totalMs!));
  rows.push({
    group: loadGroup,
    subject: 'first load in a fresh process',
    unit: 'ms',
    value: firstTotal,
    target: { text: `≤ ${LOAD_TARGET_MS} ms`, met: judge(firstTotal, '<=', LOAD_TARGET_MS) },
  });
  for (const [key, subject] of [
    ['parseMs', '… of which JSON.parse'],
    ['validateMs', '… of which parseSnapshot'],
    ['resetMs', '… of which index.reset + prune'],
  ] as const) {
    rows.push({ group: loadGroup, subject, unit: 'ms', value: summarize(first.map((x) => x[key]!)) });
  }
  if (later.length > 0) {
    rows.push({
      group: loadGroup,
      subject: 'later loads (JIT warm)',
      unit: 'ms',
      value: summarize(later.map((x) => x.totalMs!)),
    });
  }

  const serve = await serveTimes(rules, serveSamples, progress);
  const serveGroup = `${label}-rule snapshot · server`;
  rows.push(
    { group: serveGroup, subject: 'SqliteStore.snapshot()', unit: 'ms', value: summarize(serve.snapshotMs) },
    {
      group: serveGroup,
      subject: 'JSON.stringify of the body',
      unit: 'ms',
      value: summarize(serve.stringifyMs),
    },
  );

  const median = (values: number[]) => summarize(values).median;
  const indexTotal = median(heap.index.map((x) => x.total));
  const indexTable = median(heap.index.map((x) => x.structure));
  const setTotal = median(heap.set.map((x) => x.total));
  const setTable = median(heap.set.map((x) => x.structure));
  return {
    name,
    title,
    params: {
      rules: label,
      'heap runs': `${heapRuns} per structure, each in a fresh process`,
      'snapshot loads': `${loadProcesses} processes × ${loadsPerProcess}`,
      'snapshot body': `${Math.round((first[0]?.bytes ?? 0) / 1e6)} MB`,
      'server snapshots': serveSamples,
    },
    rows,
    notes: [
      `A token rule in the index costs ~${indexTotal.toFixed(1)} B (table only: ~${indexTable.toFixed(1)} B): one ` +
        'slot of a fingerprint table (12 B in one `Uint32Array`: a 64-bit fingerprint of the jti and its expiry in ' +
        'whole seconds) at a load factor ≤ 0.7, i.e. 2^21 slots for 1M rules; the jti string is not kept. A ' +
        `\`Set<string>\` costs ~${setTable.toFixed(0)} B of table on top of the jti strings it keeps alive ` +
        `(~${(setTotal - setTable).toFixed(0)} B each for a 36-character UUID). Memory is the JS heap plus ArrayBuffers ` +
        '(a typed array keeps its contents outside the JS heap).',
      `Snapshot load: the first load in a process is what a guard pays at start-up: ${firstTotal.median.toFixed(0)} ms ` +
        `against the ${LOAD_TARGET_MS} ms target, of which \`index.reset\` + \`prune\` (hashing each jti into the ` +
        `fingerprint table, which doubles as it fills) takes ${median(first.map((x) => x.resetMs!)).toFixed(0)} ms. ` +
        'Reading the body from the network is not included, so a real start-up takes longer.',
      `Server: ${serve.populate}.`,
    ],
  };
}

/** Times `SqliteStore.snapshot()` and the serialisation of its body on a temporary SQLite file holding `rules` rules. */
async function serveTimes(
  rules: number,
  samples: number,
  progress: Progress,
): Promise<{ snapshotMs: number[]; stringifyMs: number[]; populate: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'revokd-bench-'));
  try {
    const path = join(dir, 'revokd.db');
    await SqliteStore.open({ path }).close(); // creates the schema
    progress.step(`server snapshot: writing ${countLabel(rules)} rules to ${path}`);
    const populateSeconds = await timeSeconds(() => {
      const db = new DatabaseSync(path);
      try {
        const nowMs = Date.now();
        const insert = db.prepare(
          'INSERT INTO rules (rule, reason, created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?)',
        );
        db.exec('BEGIN');
        for (let i = 0; i < rules; i++) {
          const rule = tokenRule(nowMs, i);
          insert.run(JSON.stringify(rule), 'logout', nowMs, rule.expiresAtMs);
        }
        db.exec('COMMIT');
      } finally {
        db.close();
      }
    });
    const store = SqliteStore.open({ path });
    const snapshotMs: number[] = [];
    const stringifyMs: number[] = [];
    try {
      for (let i = 0; i <= samples; i++) {
        progress.step(`server snapshot: ${i === 0 ? 'warm-up' : `sample ${i}/${samples}`}`);
        let snapshot: Awaited<ReturnType<SqliteStore['snapshot']>> | undefined;
        const read = await timeSeconds(async () => {
          snapshot = await store.snapshot(Date.now());
        });
        if (snapshot?.rules.length !== rules)
          throw new Error(`the snapshot has ${snapshot?.rules.length} rules`);
        const body = snapshot;
        const write = await timeSeconds(() => JSON.stringify(body));
        if (i === 0) continue;
        snapshotMs.push(read * 1000);
        stringifyMs.push(write * 1000);
      }
    } finally {
      await store.close();
    }
    return {
      snapshotMs,
      stringifyMs,
      populate: `the ${countLabel(rules)} rules were written in one transaction in ${populateSeconds.toFixed(1)} s (set-up, not timed)`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
