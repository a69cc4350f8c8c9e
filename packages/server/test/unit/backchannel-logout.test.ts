import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { backoffMs, decideAfterFailure } from '../../src/services/backchannel-logout.ts';

const settings = parseConfig({
  issuer: 'https://revokd.test',
  backchannelLogout: { initialBackoffMs: 1000, maxBackoffMs: 60_000, maxAttempts: 10, maxAgeMs: 3_600_000 },
}).backchannelLogout;
const T0 = Date.UTC(2026, 0, 1);
const top = () => 0.999_999;
const bottom = () => 0;

describe('back-channel logout retry policy', () => {
  test('the backoff doubles per failed attempt up to maxBackoffMs', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 20].map((attempts) => backoffMs(attempts, settings, top)),
      [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000],
    );
  });

  test('jitter scales the delay into [0.5, 1) of its value', () => {
    assert.equal(backoffMs(1, settings, bottom), 500);
    assert.equal(
      backoffMs(3, settings, () => 0.5),
      3000,
    );
    assert.equal(backoffMs(1000, settings, bottom), 30_000, 'huge attempt counts stay finite');
  });

  test('retries until maxAttempts, then gives up', () => {
    assert.deepEqual(decideAfterFailure({ attempts: 1, createdAtMs: T0 }, T0, settings, top), {
      kind: 'retry',
      nextAttemptAtMs: T0 + 1000,
    });
    assert.deepEqual(decideAfterFailure({ attempts: 9, createdAtMs: T0 }, T0 + 1000, settings, top), {
      kind: 'retry',
      nextAttemptAtMs: T0 + 61_000,
    });
    assert.deepEqual(decideAfterFailure({ attempts: 10, createdAtMs: T0 }, T0, settings, top), {
      kind: 'give-up',
    });
  });

  test('gives up when the next attempt would come after maxAgeMs', () => {
    const late = T0 + 3_600_000 - 30_000;
    assert.deepEqual(decideAfterFailure({ attempts: 7, createdAtMs: T0 }, late, settings, top), {
      kind: 'give-up',
    });
    assert.equal(decideAfterFailure({ attempts: 1, createdAtMs: T0 }, late, settings, top).kind, 'retry');
  });
});
