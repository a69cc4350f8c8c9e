import assert from 'node:assert/strict';

/** Polls until `predicate` holds; returns how long it took in ms, or fails the test after `boundMs`. */
export async function within(
  boundMs: number,
  what: string,
  predicate: () => boolean | Promise<boolean>,
  pollMs = 2,
): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await predicate()) return performance.now() - started;
    if (performance.now() - started > boundMs) assert.fail(`${what}: not within ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
