import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type RateDecision, RateLimiter } from '../../src/core/rate-limiter.ts';

const T0 = Date.UTC(2026, 0, 1);

/** Takes `n` times at `nowMs` and returns how many were allowed. */
function takeMany(limiter: RateLimiter, key: string, n: number, nowMs: number): number {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (limiter.take(key, nowMs).allowed) allowed += 1;
  return allowed;
}

function retryAfter(decision: RateDecision): number | undefined {
  return decision.allowed ? undefined : decision.retryAfterSeconds;
}

describe('RateLimiter: burst', () => {
  test('a new key may make exactly `burst` requests at once', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 5 });
    assert.equal(takeMany(limiter, 'a', 5, T0), 5);
    assert.equal(limiter.take('a', T0).allowed, false);
  });

  test('each key has its own bucket', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 2 });
    assert.equal(takeMany(limiter, 'a', 3, T0), 2);
    assert.equal(takeMany(limiter, 'b', 3, T0), 2);
  });

  test('denied requests do not consume tokens', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1 });
    limiter.take('a', T0);
    assert.equal(takeMany(limiter, 'a', 10, T0 + 500), 0);
    assert.equal(limiter.take('a', T0 + 1000).allowed, true);
  });
});

describe('RateLimiter: refill', () => {
  const cases: ReadonlyArray<{
    name: string;
    ratePerSecond: number;
    burst: number;
    waitMs: number;
    allowed: number;
  }> = [
    { name: 'one second at 1/s refills one request', ratePerSecond: 1, burst: 5, waitMs: 1000, allowed: 1 },
    { name: '999 ms at 1/s refills nothing', ratePerSecond: 1, burst: 5, waitMs: 999, allowed: 0 },
    {
      name: 'three seconds at 1/s refills three requests',
      ratePerSecond: 1,
      burst: 5,
      waitMs: 3000,
      allowed: 3,
    },
    { name: '100 ms at 50/s refills five requests', ratePerSecond: 50, burst: 100, waitMs: 100, allowed: 5 },
    {
      name: 'two seconds at 0.5/s refills one request',
      ratePerSecond: 0.5,
      burst: 5,
      waitMs: 2000,
      allowed: 1,
    },
    {
      name: 'a long wait refills no more than the burst',
      ratePerSecond: 1,
      burst: 5,
      waitMs: 3_600_000,
      allowed: 5,
    },
  ];
  for (const { name, ratePerSecond, burst, waitMs, allowed } of cases) {
    test(name, () => {
      const limiter = new RateLimiter({ ratePerSecond, burst });
      assert.equal(takeMany(limiter, 'a', burst, T0), burst);
      assert.equal(takeMany(limiter, 'a', burst + 1, T0 + waitMs), allowed);
    });
  }

  test('partial refills accumulate across requests', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1 });
    limiter.take('a', T0);
    assert.equal(limiter.take('a', T0 + 400).allowed, false);
    assert.equal(limiter.take('a', T0 + 800).allowed, false);
    assert.equal(limiter.take('a', T0 + 1000).allowed, true);
  });

  test('a clock that steps backwards neither refills nor drains', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1 });
    limiter.take('a', T0);
    assert.equal(limiter.take('a', T0 - 60_000).allowed, false);
    assert.equal(limiter.take('a', T0 - 59_000).allowed, true);
  });
});

describe('RateLimiter: retryAfterSeconds', () => {
  const cases: ReadonlyArray<{ name: string; ratePerSecond: number; elapsedMs: number; expected: number }> = [
    { name: 'an empty bucket at 1/s says retry in 1 s', ratePerSecond: 1, elapsedMs: 0, expected: 1 },
    { name: 'an empty bucket at 0.5/s says retry in 2 s', ratePerSecond: 0.5, elapsedMs: 0, expected: 2 },
    { name: 'an empty bucket at 0.1/s says retry in 10 s', ratePerSecond: 0.1, elapsedMs: 0, expected: 10 },
    {
      name: 'a quarter-refilled bucket at 0.5/s rounds 1.5 s up to 2 s',
      ratePerSecond: 0.5,
      elapsedMs: 500,
      expected: 2,
    },
    { name: 'a fast rate never says less than 1 s', ratePerSecond: 1000, elapsedMs: 0, expected: 1 },
  ];
  for (const { name, ratePerSecond, elapsedMs, expected } of cases) {
    test(name, () => {
      const limiter = new RateLimiter({ ratePerSecond, burst: 1 });
      limiter.take('a', T0);
      assert.equal(retryAfter(limiter.take('a', T0 + elapsedMs)), expected);
    });
  }

  test('waiting retryAfterSeconds is enough to be allowed again', () => {
    const limiter = new RateLimiter({ ratePerSecond: 0.3, burst: 1 });
    limiter.take('a', T0);
    const wait = retryAfter(limiter.take('a', T0 + 700));
    assert.ok(wait !== undefined);
    assert.equal(limiter.take('a', T0 + 700 + wait * 1000).allowed, true);
  });
});

describe('RateLimiter: sweep', () => {
  test('sweep keeps a bucket that has not refilled, so its debt is not forgiven', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 3 });
    takeMany(limiter, 'a', 3, T0);
    limiter.sweep(T0 + 1000);
    assert.equal(takeMany(limiter, 'a', 3, T0 + 1000), 1);
  });

  test('a bucket swept once full behaves as a fresh one', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 3 });
    takeMany(limiter, 'a', 3, T0);
    limiter.sweep(T0 + 3000);
    assert.equal(takeMany(limiter, 'a', 4, T0 + 3000), 3);
  });

  test('reaching maxKeys sweeps full buckets first, and keeps memory bounded by forgetting the oldest', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 2 }, 2);
    takeMany(limiter, 'a', 2, T0);
    takeMany(limiter, 'b', 2, T0);
    // A third key arrives while a and b are still empty: the sweep frees nothing, so the oldest (a) goes.
    assert.equal(limiter.take('c', T0 + 100).allowed, true);
    assert.equal(limiter.take('b', T0 + 100).allowed, false, 'b is still limited');
    assert.equal(limiter.take('a', T0 + 100).allowed, true, 'a was forgotten and starts a new bucket');
  });
});
