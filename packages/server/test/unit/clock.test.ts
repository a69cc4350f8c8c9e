import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Clock, ManualClock, SystemClock } from '../../src/core/clock.ts';

/** Calls nowUs `n` times and asserts every value is strictly greater than the one before. */
function assertStrictlyIncreasing(clock: Clock, n: number): number[] {
  const values: number[] = [];
  for (let i = 0; i < n; i++) values.push(clock.nowUs());
  for (let i = 1; i < n; i++) {
    assert.ok(values[i]! > values[i - 1]!, `call ${i}: ${values[i]} is not after ${values[i - 1]}`);
  }
  return values;
}

describe('SystemClock', () => {
  test('nowUs is strictly increasing over many calls within the same millisecond', () => {
    // 5000 calls cannot each take a millisecond: many share one, and must still differ.
    assertStrictlyIncreasing(new SystemClock(), 5000);
  });

  test('nowUs reads wall-clock time in microseconds', () => {
    const clock = new SystemClock();
    const before = Date.now();
    const us = clock.nowUs();
    const after = Date.now();
    assert.ok(us >= before * 1000 && us <= after * 1000 + 999, `${us} outside [${before}, ${after}] ms`);
    assert.ok(Number.isSafeInteger(us));
  });

  test('nowMs reads wall-clock time in milliseconds', () => {
    const before = Date.now();
    const ms = new SystemClock().nowMs();
    assert.ok(ms >= before && ms <= Date.now());
  });
});

describe('ManualClock', () => {
  test('starts at 2026-01-01T00:00:00Z by default', () => {
    assert.equal(new ManualClock().nowMs(), Date.UTC(2026, 0, 1));
  });

  test('nowMs stays put until advanced', () => {
    const clock = new ManualClock(1_000);
    clock.nowUs();
    assert.equal(clock.nowMs(), 1_000);
    clock.advance(250);
    assert.equal(clock.nowMs(), 1_250);
  });

  test('nowUs starts at the current millisecond and is strictly increasing while time stands still', () => {
    const clock = new ManualClock(1_000);
    const values = assertStrictlyIncreasing(clock, 100);
    assert.equal(values[0], 1_000_000);
    assert.equal(values[99], 1_000_099);
  });

  test('nowUs jumps to the new millisecond after advance', () => {
    const clock = new ManualClock(1_000);
    clock.nowUs();
    clock.advance(5);
    assert.equal(clock.nowUs(), 1_005_000);
  });

  test('nowUs keeps increasing after more calls than a millisecond holds, then an advance', () => {
    const clock = new ManualClock(1_000);
    const first = assertStrictlyIncreasing(clock, 1500);
    clock.advance(1);
    const next = clock.nowUs();
    assert.ok(next > first.at(-1)!, `${next} is not after ${first.at(-1)}`);
  });

  test('nowUs keeps increasing when the clock is moved backwards', () => {
    const clock = new ManualClock(1_000);
    const last = clock.nowUs();
    clock.advance(-500);
    assert.equal(clock.nowMs(), 500);
    assert.ok(clock.nowUs() > last);
  });

  test('a not-before instant and a token issued right after it compare in order', () => {
    const clock = new ManualClock();
    const ruleUs = clock.nowUs();
    const tokenUs = clock.nowUs();
    assert.ok(tokenUs > ruleUs);
    assert.equal(Math.floor(ruleUs / 1000), Math.floor(tokenUs / 1000), 'same millisecond');
  });
});

describe('observeUs (the hybrid logical clock across nodes)', () => {
  for (const make of [() => new SystemClock(), () => new ManualClock()]) {
    const clock = make();
    test(`${clock.constructor.name}: after observing an instant ahead of it, nowUs comes after that instant`, () => {
      const ahead = clock.nowMs() * 1000 + 5_000_000;
      clock.observeUs(ahead);
      assert.ok(clock.nowUs() > ahead);
      assertStrictlyIncreasing(clock, 100);
    });

    test(`${clock.constructor.name}: observing an instant in the past changes nothing`, () => {
      const before = clock.nowUs();
      clock.observeUs(before - 1_000_000);
      assert.ok(clock.nowUs() > before);
    });

    test(`${clock.constructor.name}: nowMs stays the wall clock whatever is observed`, () => {
      const ms = clock.nowMs();
      clock.observeUs(ms * 1000 + 60_000_000);
      assert.ok(clock.nowMs() < ms + 1000);
    });
  }
});
