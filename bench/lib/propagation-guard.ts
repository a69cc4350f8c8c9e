/**
 * One guard process of the `propagation` benchmark: `createGuard` following a real `revokd serve`, nothing else
 * (no HTTP server: the driver talks to it over the IPC channel of `child_process.fork`).
 *
 * Measuring without polling: `RevocationIndex.prototype.apply` (what the guard's feed follower calls for each
 * entries frame of the stream) is wrapped, in this process only, so that right after each applied frame the
 * next watched token is checked with the public `guard.check()`. The first time it is rejected (`revoked`), the
 * instant is taken with `process.hrtime` (CLOCK_MONOTONIC on Linux: one clock for every process of the machine,
 * so comparable with the driver's), and sent to the driver. The watched tokens are checked once beforehand, so
 * these checks are answered from the verified-token cache (a few hundred ns each).
 *
 * Messages from the driver: `{ type: 'clock' }` → `{ type: 'clock', at }`; `{ type: 'watch', tokens }` (revoked
 * in this order) → `{ type: 'watching' }`. To the driver: `{ type: 'ready', guardId }`, then
 * `{ type: 'rejected', index, at }` per watched token, or `{ type: 'failed', message }`.
 * Configured by environment: `GUARD_ISSUER`, `GUARD_CLIENT_ID`, `GUARD_CLIENT_SECRET`, `GUARD_ID`, `GUARD_AUDIENCE`.
 */
import { createGuard } from '@revokd/guard';
import { RevocationIndex } from '../../packages/guard/src/model/revocation-index.ts';

type FromDriver = { type: 'clock' } | { type: 'watch'; tokens: string[] };

/** Milliseconds on the machine-wide monotonic clock (the same in every process). */
function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function env(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
}

function send(message: unknown): void {
  process.send?.(message);
}

let headers: string[] = [];
let next = 0;
let failed = false;

const guard = createGuard({
  issuer: env('GUARD_ISSUER'),
  audience: env('GUARD_AUDIENCE', 'https://api.example.com'),
  clientId: env('GUARD_CLIENT_ID'),
  clientSecret: env('GUARD_CLIENT_SECRET'),
  guardId: env('GUARD_ID'),
  readyTimeoutMs: 30_000,
});

/** Right after a frame is applied: records every watched token the guard now rejects, in order. */
function afterApply(): void {
  while (next < headers.length && !failed) {
    const decision = guard.check(headers[next]);
    if (decision.ok) return;
    const at = monotonicMs();
    if (decision.reason !== 'revoked') {
      failed = true;
      send({ type: 'failed', message: `token ${next} rejected for ${decision.reason}, not revoked` });
      return;
    }
    send({ type: 'rejected', index: next, at });
    next += 1;
  }
}

const apply = RevocationIndex.prototype.apply;
RevocationIndex.prototype.apply = function applyAndCheck(this: RevocationIndex, entries) {
  apply.call(this, entries);
  if (next < headers.length) afterApply();
};

process.on('message', (message: FromDriver) => {
  if (message.type === 'clock') {
    send({ type: 'clock', at: monotonicMs() });
    return;
  }
  if (message.type === 'watch') {
    const watched = message.tokens.map((token) => `Bearer ${token}`);
    for (const [i, header] of watched.entries()) {
      const decision = guard.check(header);
      if (!decision.ok) {
        send({
          type: 'failed',
          message: `token ${i} not accepted before its revocation: ${decision.reason}`,
        });
        return;
      }
    }
    headers = watched;
    next = 0;
    send({ type: 'watching' });
  }
});
process.on('disconnect', () => {
  void guard.close().finally(() => process.exit(0));
});

try {
  await guard.ready();
  send({ type: 'ready', guardId: guard.health().guardId });
} catch (error) {
  send({ type: 'failed', message: `guard not ready: ${String(error)}` });
  process.exit(1);
}
