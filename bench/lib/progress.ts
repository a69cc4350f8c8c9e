import type { Progress } from './types.ts';

/** Progress lines on stderr (stdout stays free for the results). */
export function stderrProgress(name: string, startedAt = performance.now()): Progress {
  return {
    step(message) {
      const seconds = ((performance.now() - startedAt) / 1000).toFixed(1).padStart(6);
      process.stderr.write(`[${seconds}s] ${name}: ${message}\n`);
    },
  };
}
