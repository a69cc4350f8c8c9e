import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs `bench/lib/<script>` in a fresh Node process with `nodeFlags` and returns the JSON it prints. */
export async function runChild<T>(
  script: string,
  args: readonly string[],
  nodeFlags: readonly string[],
): Promise<T> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const { stdout } = await run(
    process.execPath,
    [...nodeFlags, '--disable-warning=ExperimentalWarning', path, ...args],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as T;
}
