/**
 * Durable revocations on the embedded store: acknowledged `SqliteStore.revoke` calls per second, each awaited (the
 * store answers only once the WAL holding the commit has been synced to the disk with `fdatasync`), from 16
 * concurrent callers side by side with 1 caller. One token rule and its audit event per revocation, as
 * `RevocationService.revoke` writes for one token. A temporary database file in the OS temp directory.
 *
 * Target: ≥ 10,000 acknowledged revocations/s from 16 concurrent callers.
 * Reproduce: `npm run bench -- durable-revocations`.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../packages/server/src/store/sqlite/sqlite-store.ts';
import { type Contender, sideBySide } from './lib/measure.ts';
import { judge } from './lib/report.ts';
import type { BenchOptions, BenchResult, Row } from './lib/types.ts';
import { byMode } from './lib/types.ts';

export const name = 'durable-revocations';
export const title = 'Durable revocations, embedded store';

const TARGET = 10_000;
const CALLERS = [1, 16] as const;

export async function run({ mode, progress }: BenchOptions): Promise<BenchResult> {
  const windowMs = byMode(mode, { full: 2000, quick: 1000, smoke: 50 });
  const samples = byMode(mode, { full: 5, quick: 5, smoke: 5 });
  const warmup = 1;
  const dir = mkdtempSync(join(tmpdir(), 'revokd-bench-'));
  const store = SqliteStore.open({ path: join(dir, 'revokd.db') });
  try {
    const revokeOne = async () => {
      const nowMs = Date.now();
      const jti = randomUUID();
      await store.revoke({
        rules: [{ kind: 'token', jti, expiresAtMs: nowMs + 600_000 }],
        effects: [],
        reason: 'logout',
        nowMs,
        audit: [{ type: 'revoked', atMs: nowMs, actor: 'bench-client', jti, reason: 'logout' }],
      });
    };
    // Each contender revokes for a fixed window; `ops` is filled in by the batch (the count it reached).
    const counts = new Map<number, number>();
    const contenders: Contender[] = CALLERS.map((callers) => {
      const contender = {
        name: `${callers} caller${callers === 1 ? '' : 's'}`,
        ops: 0,
        async batch() {
          let done = 0;
          const end = performance.now() + windowMs;
          const caller = async () => {
            while (performance.now() < end) {
              await revokeOne();
              done += 1;
            }
          };
          await Promise.all(Array.from({ length: callers }, caller));
          counts.set(callers, (counts.get(callers) ?? 0) + done);
          contender.ops = done;
        },
      };
      return contender;
    });
    const results = await sideBySide(contenders, {
      samples,
      warmup,
      baseline: contenders[0]!.name,
      onRound: (round, total) => progress.step(`round ${round}/${total}`),
    });
    const rows: Row[] = contenders.map((c) => {
      const result = results.get(c.name)!;
      return {
        group: 'SQLite, WAL synced before each answer',
        subject: c.name,
        unit: 'revocations/s',
        value: result.rate,
        ...(c === contenders[0] ? {} : { ratio: { to: '1 caller', value: result.ratio! } }),
        ...(c.name === '16 callers'
          ? { target: { text: '≥ 10,000/s', met: judge(result.rate, '>=', TARGET) } }
          : {}),
      };
    });
    const one = results.get(contenders[0]!.name)!.rate.median;
    const many = results.get(contenders[1]!.name)!.rate.median;
    return {
      name,
      title,
      params: {
        'window per round': `${windowMs} ms`,
        rounds: `${samples} (+${warmup} warm-up)`,
        database: 'a temporary file',
      },
      rows,
      notes: [
        `One caller waits for each commit: ${(1000 / one).toFixed(2)} ms per acknowledged revocation (one commit ` +
          `and one sync of the WAL each). Sixteen callers share commits and syncs (group commit: the writes queued ` +
          'in one event-loop turn commit together, and the batches that commit while a sync runs share the next ' +
          `one), ${(1000 / many).toFixed(3)} ms per revocation.`,
      ],
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
