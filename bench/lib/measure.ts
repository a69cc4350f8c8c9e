/**
 * Side-by-side measurement: every round runs each contender once, in a rotating order, and ratios are taken
 * within the round. On a shared, noisy machine absolute rates drift from round to round; the ratio of two
 * contenders measured a moment apart holds much better.
 */
import { summarize } from './stats.ts';
import type { Stats } from './types.ts';

export interface Contender {
  readonly name: string;
  /** Operations one call of `batch` performs. */
  readonly ops: number;
  /** Untimed set-up before each timed batch (a fresh cache, fresh input strings). */
  readonly prepare?: () => void | Promise<void>;
  /** The timed work. Throws if an operation gave a wrong answer, so a benchmark never times failures. */
  readonly batch: () => void | Promise<void>;
}

export interface SideBySideOptions {
  /** Rounds kept. */
  readonly samples: number;
  /** Rounds run first and thrown away (JIT, caches). */
  readonly warmup: number;
  /** Ratios are taken to this contender. */
  readonly baseline?: string;
  /** Called after each round (progress). */
  readonly onRound?: (round: number, total: number) => void;
}

export interface ContenderResult {
  /** Operations per second. */
  readonly rate: Stats;
  /** Rate divided by the baseline's rate in the same round. */
  readonly ratio: Stats | undefined;
}

export async function sideBySide(
  contenders: readonly Contender[],
  options: SideBySideOptions,
): Promise<Map<string, ContenderResult>> {
  const rates = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const ratios = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const total = options.warmup + options.samples;
  for (let round = 0; round < total; round++) {
    const inRound = new Map<string, number>();
    for (let i = 0; i < contenders.length; i++) {
      const contender = contenders[(i + round) % contenders.length]!;
      await contender.prepare?.();
      const seconds = await timeSeconds(contender.batch);
      // Read `ops` after the batch: a contender that counts what it did in a fixed window sets it there.
      inRound.set(contender.name, contender.ops / seconds);
    }
    options.onRound?.(round + 1, total);
    if (round < options.warmup) continue;
    const base = options.baseline === undefined ? undefined : inRound.get(options.baseline);
    for (const [name, rate] of inRound) {
      rates.get(name)!.push(rate);
      if (base !== undefined) ratios.get(name)!.push(rate / base);
    }
  }
  return new Map(
    contenders.map((c) => [
      c.name,
      {
        rate: summarize(rates.get(c.name)!),
        ratio: options.baseline === undefined ? undefined : summarize(ratios.get(c.name)!),
      },
    ]),
  );
}

/** Wall time of one call, in seconds. */
export async function timeSeconds(work: () => unknown): Promise<number> {
  const start = process.hrtime.bigint();
  const result = work();
  if (result instanceof Promise) await result;
  return Number(process.hrtime.bigint() - start) / 1e9;
}
