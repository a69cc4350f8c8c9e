/**
 * Child process of bench/memory.ts, run with `--expose-gc` so each measurement starts from a fresh heap:
 *
 *   node --expose-gc bench/lib/heap-probe.ts index|set COUNT      heap bytes per entry
 *   node --expose-gc bench/lib/heap-probe.ts snapshot-load COUNT LOADS   guard snapshot load times
 *
 * Prints one JSON object on stdout.
 */
import { randomUUID } from 'node:crypto';
import { parseSnapshot } from '../../packages/guard/src/feed/wire.ts';
import { RevocationIndex } from '../../packages/guard/src/model/revocation-index.ts';
import { tokenRule } from './rules.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

/**
 * JS heap in use plus ArrayBuffer backing stores, after two forced GCs. The backing store of a typed array (the
 * index's fingerprint tables) lives outside the JS heap, so `heapUsed` alone would not see it.
 */
function heapUsed(): number {
  gc!();
  gc!();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

/**
 * Heap growth per entry (JS heap + ArrayBuffers) of a structure holding `count` UUID jtis. The jtis come from
 * `JSON.parse`, as they do from a snapshot: flat strings. `total` counts what the structure keeps alive (its own
 * tables, the jti strings if it keeps them, boxed numbers); `structure` leaves out the strings (they were allocated
 * before).
 */
function perEntry(kind: 'index' | 'set', count: number): { total: number; structure: number } {
  const base = heapUsed();
  let jtis: string[] | undefined = parsedJtis(count);
  const withStrings = heapUsed();
  const nowMs = Date.now();
  let size: number;
  let keep: unknown;
  if (kind === 'index') {
    const index = new RevocationIndex();
    for (let i = 0; i < count; i++) {
      index.add({ kind: 'token', jti: jtis![i]!, expiresAtMs: tokenRule(nowMs, i).expiresAtMs });
    }
    size = index.size;
    keep = index;
  } else {
    const set = new Set<string>();
    for (let i = 0; i < count; i++) set.add(jtis![i]!);
    size = set.size;
    keep = set;
  }
  const withStructure = heapUsed();
  // Read the strings after that measurement: otherwise an optimised frame may treat them as dead once the loop is
  // done, and a structure that does not keep them (the index) would be credited with their collection.
  if (jtis!.length !== count) throw new Error('lost the jtis');
  jtis = undefined;
  const retained = heapUsed();
  if (size !== count || keep === undefined)
    throw new Error(`${kind} holds ${size} entries, expected ${count}`);
  return { total: (retained - base) / count, structure: (withStructure - withStrings) / count };
}

/** `count` UUIDs as `JSON.parse` makes them (in a frame of their own, so no temporary outlives the call). */
function parsedJtis(count: number): string[] {
  return JSON.parse(JSON.stringify(Array.from({ length: count }, () => randomUUID())));
}

/** What a guard does with a snapshot body once read: JSON.parse, validate every rule, fill the index, prune. */
function snapshotLoads(count: number, loads: number): Array<Record<string, number>> {
  const nowMs = Date.now();
  const text = JSON.stringify({
    cursor: count,
    rules: Array.from({ length: count }, (_, i) => tokenRule(nowMs, i)),
  });
  const times: Array<Record<string, number>> = [];
  for (let i = 0; i < loads; i++) {
    heapUsed();
    const index = new RevocationIndex();
    const t0 = performance.now();
    const body: unknown = JSON.parse(text);
    const t1 = performance.now();
    const snapshot = parseSnapshot(body);
    const t2 = performance.now();
    if (snapshot === undefined) throw new Error('invalid snapshot');
    index.reset(snapshot.rules, snapshot.cursor);
    index.prune(Date.now());
    const t3 = performance.now();
    if (index.size !== count) throw new Error(`the index holds ${index.size} rules, expected ${count}`);
    times.push({
      totalMs: t3 - t0,
      parseMs: t1 - t0,
      validateMs: t2 - t1,
      resetMs: t3 - t2,
      bytes: text.length,
    });
  }
  return times;
}

const [kind, countText, loadsText] = process.argv.slice(2);
const count = Number(countText);
if (!Number.isSafeInteger(count) || count <= 0) throw new Error(`bad count: ${countText}`);
if (kind === 'index' || kind === 'set') {
  process.stdout.write(`${JSON.stringify(perEntry(kind, count))}\n`);
} else if (kind === 'snapshot-load') {
  process.stdout.write(`${JSON.stringify(snapshotLoads(count, Number(loadsText ?? 1)))}\n`);
} else {
  throw new Error(`unknown probe: ${kind}`);
}
