/** The shapes shared by the harness and the benchmarks. */

/** `full`: the numbers for the README. `quick`: smaller counts, a minute or two. `smoke`: tiny counts, every code path, seconds. */
export type Mode = 'full' | 'quick' | 'smoke';

export interface Progress {
  /** One line on stderr, prefixed with the benchmark name and the elapsed time. */
  step(message: string): void;
}

export interface BenchOptions {
  readonly mode: Mode;
  readonly progress: Progress;
}

/** Median and spread of repeated samples. */
export interface Stats {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** First and third quartiles (interpolated). */
  readonly q1: number;
  readonly q3: number;
  readonly samples: readonly number[];
}

export type Unit = 'ops/s' | 'checks/s' | 'revocations/s' | 'B/rule' | 'ms';

export interface Row {
  /** What is measured, e.g. `EdDSA · 1M rules`. Rows of one group were measured side by side. */
  readonly group: string;
  /** Who is measured, e.g. `guard`, `raw node:crypto`. */
  readonly subject: string;
  readonly unit: Unit;
  /** Undefined when the case does not apply (the note says why). */
  readonly value: Stats | undefined;
  /** This subject relative to another of the same group, computed sample by sample (same round, same conditions). */
  readonly ratio?: { readonly to: string; readonly value: Stats };
  /** A second ratio, shown next to the first (and not judged); `label` names `to` in a table cell. */
  readonly also?: { readonly to: string; readonly label: string; readonly value: Stats };
  /** The design target this row is judged against. `met` compares the median. */
  readonly target?: { readonly text: string; readonly met: boolean };
  readonly note?: string;
}

export interface BenchResult {
  readonly name: string;
  readonly title: string;
  /** Counts and settings the numbers depend on. */
  readonly params: Readonly<Record<string, unknown>>;
  readonly rows: readonly Row[];
  /** Findings worth reading next to the table (why a target is missed, what a number includes). */
  readonly notes: readonly string[];
  /** `pivot`: one line per group, one column per subject (for wide side-by-side comparisons). */
  readonly layout?: 'rows' | 'pivot';
}

export interface Benchmark {
  readonly name: string;
  readonly title: string;
  run(options: BenchOptions): Promise<BenchResult>;
}

/** Picks the value for the mode. */
export function byMode<T>(mode: Mode, values: { readonly full: T; readonly quick: T; readonly smoke: T }): T {
  return values[mode];
}
