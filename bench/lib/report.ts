/** The results as JSON (for machines) and markdown (for the README). */
import type { Machine } from './machine.ts';
import type { BenchResult, Mode, Row, Stats, Unit } from './types.ts';

export interface Report {
  readonly date: string;
  readonly mode: Mode;
  readonly durationSeconds: number;
  readonly machine: Machine;
  readonly benchmarks: readonly BenchResult[];
}

const RATE_UNITS: ReadonlySet<Unit> = new Set(['ops/s', 'checks/s', 'revocations/s']);

/** Markdown: the machine, a table of the targets, then one section per benchmark. `level` is the top heading level. */
export function renderMarkdown(report: Report, level = 1): string {
  const h = (n: number) => '#'.repeat(level + n);
  const m = report.machine;
  const out: string[] = [
    `${h(0)} revokd benchmarks`,
    '',
    `Run ${report.date.slice(0, 16).replace('T', ' ')} UTC, mode \`${report.mode}\`, ${Math.round(report.durationSeconds)} s. ` +
      `Machine: ${m.os}, ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node} (V8 ${m.v8}).`,
    '',
    'The machine is shared and noisy: absolute numbers drift from run to run. Contenders of one case are measured ' +
      'side by side, round by round, and each ratio is taken within a round: read the ratios. Medians, with ' +
      'min–max over the rounds.',
    '',
  ];
  const targets = report.benchmarks.flatMap((b) => b.rows.filter((r) => r.target).map((r) => ({ b, r })));
  if (targets.length > 0) {
    out.push(
      `${h(1)} Targets`,
      '',
      '| benchmark | case | target | measured | status |',
      '|---|---|---|---|---|',
    );
    for (const { b, r } of targets) {
      out.push(
        `| ${b.name} | ${cell(`${r.group} · ${r.subject}`)} | ${r.target!.text} | ${cell(measured(r))} | ${status(r.target!.met)} |`,
      );
    }
    out.push('');
  }
  for (const bench of report.benchmarks) {
    out.push(`${h(1)} ${bench.title} (\`${bench.name}\`)`, '');
    const params = Object.entries(bench.params)
      .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' · ');
    if (params) out.push(params, '');
    if (bench.layout === 'pivot') {
      out.push(...pivotTable(bench.rows), '');
      out.push(
        '<details><summary>every row, with spread</summary>',
        '',
        ...rowTable(bench.rows),
        '',
        '</details>',
      );
    } else {
      out.push(...rowTable(bench.rows));
    }
    out.push('');
    for (const note of bench.notes) out.push(`- ${note}`);
    if (bench.notes.length > 0) out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

function rowTable(rows: readonly Row[]): string[] {
  const withNotes = rows.some((r) => r.note);
  const lines = [
    `| case | subject | median | min – max | ratio (min – max) | target |${withNotes ? ' note |' : ''}`,
    `|---|---|---|---|---|---|${withNotes ? '---|' : ''}`,
  ];
  for (const r of rows) {
    const cells = [
      r.group,
      r.subject,
      r.value ? `${formatValue(r.value.median, r.unit)} ${r.unit}${perOp(r.value.median, r.unit)}` : 'n/a',
      r.value ? `${formatValue(r.value.min, r.unit)} – ${formatValue(r.value.max, r.unit)}` : '',
      [r.ratio, r.also]
        .flatMap((ratio) =>
          ratio
            ? [
                `${formatRatio(ratio.value.median)} ${ratio.to} (${formatRatio(ratio.value.min)} – ${formatRatio(ratio.value.max)})`,
              ]
            : [],
        )
        .join('; '),
      r.target ? `${r.target.text}: ${status(r.target.met)}` : '',
    ];
    if (withNotes) cells.push(r.note ?? '');
    lines.push(`| ${cells.map(cell).join(' | ')} |`);
  }
  return lines;
}

/** Table cell text: `<`, `>` and `|` would otherwise be read as HTML or as a column break. */
function cell(text: string): string {
  return text.replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('|', '\\|');
}

/** One line per group, one column per subject: value and ratio in each cell, the group's targets last. */
function pivotTable(rows: readonly Row[]): string[] {
  const subjects = [...new Set(rows.map((r) => r.subject))];
  const groups = [...new Set(rows.map((r) => r.group))];
  const unit = rows[0]?.unit ?? '';
  const lines = [
    `| case (${unit}, ratio) | ${subjects.map(cell).join(' | ')} | target |`,
    `|---|${subjects.map(() => '---|').join('')}---|`,
  ];
  for (const group of groups) {
    const inGroup = rows.filter((r) => r.group === group);
    const cells = subjects.map((subject) => {
      const r = inGroup.find((x) => x.subject === subject);
      if (!r) return '';
      if (!r.value) return r.note ? `n/a (${r.note})` : 'n/a';
      const ratio = r.ratio && r.ratio.to !== subject ? ` · ${formatRatio(r.ratio.value.median)}` : '';
      const also = r.also ? ` (${formatRatio(r.also.value.median)} ${r.also.label})` : '';
      return `${formatValue(r.value.median, r.unit)}${ratio}${also}`;
    });
    const targets = inGroup
      .filter((r) => r.target)
      .map((r) => `${r.subject} ${r.target!.text}: ${status(r.target!.met)}`);
    lines.push(`| ${cell(group)} | ${cells.map(cell).join(' | ')} | ${cell(targets.join('; '))} |`);
  }
  return lines;
}

function measured(r: Row): string {
  if (!r.value) return 'n/a';
  const value = `${formatValue(r.value.median, r.unit)} ${r.unit}`;
  return r.ratio ? `${formatRatio(r.ratio.value.median)} ${r.ratio.to} (${value})` : value;
}

function status(met: boolean): string {
  return met ? 'met' : '**missed**';
}

export function formatValue(value: number, unit: Unit): string {
  if (unit === 'ms') return value < 100 ? value.toFixed(1) : Math.round(value).toLocaleString('en-US');
  if (unit === 'B/rule') return value.toFixed(1);
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toPrecision(3);
}

export function formatRatio(ratio: number): string {
  return `${ratio.toFixed(2)}×`;
}

/** For rates: the time per operation, e.g. ` (123 µs)`. */
function perOp(rate: number, unit: Unit): string {
  if (!RATE_UNITS.has(unit) || rate <= 0) return '';
  const us = 1e6 / rate;
  return us >= 1
    ? ` (${us >= 100 ? Math.round(us) : us.toPrecision(3)} µs)`
    : ` (${Math.round(us * 1000)} ns)`;
}

/** The median of `stats` judged against `bound` (`>=` or `<=`). */
export function judge(stats: Stats | undefined, comparison: '>=' | '<=', bound: number): boolean {
  if (!stats) return false;
  return comparison === '>=' ? stats.median >= bound : stats.median <= bound;
}
