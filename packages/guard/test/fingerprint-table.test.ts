import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { expirySeconds, FingerprintTable, fingerprintKey } from '../src/model/fingerprint-table.ts';

/** 2026-01-01T00:00:00Z, a whole second. */
const NOW_MS = Date.UTC(2026, 0, 1);
const MAX_EXPIRY_S = 2 ** 32 - 1;

/** mulberry32: a small seeded PRNG, so every run replays the same operation sequence. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Stored expiry of `expiresAtMs` in ms: rounded up to the whole second, as the table keeps it. */
const rounded = (expiresAtMs: number) => expirySeconds(expiresAtMs) * 1000;

/** Invariants that must hold after every operation. */
function assertShape(table: FingerprintTable, context = ''): void {
  const capacity = table.capacity;
  assert.ok(capacity >= 16 && (capacity & (capacity - 1)) === 0, `capacity ${capacity} ${context}`);
  assert.ok(table.size <= Math.floor(capacity * 0.7), `load ${table.size}/${capacity} ${context}`);
}

describe('FingerprintTable: expiries are whole seconds, rounded up', () => {
  const cases: ReadonlyArray<{ name: string; ms: number; seconds: number }> = [
    { name: 'a whole second is kept exactly', ms: NOW_MS, seconds: NOW_MS / 1000 },
    { name: '1 ms past a second rounds up to the next', ms: NOW_MS + 1, seconds: NOW_MS / 1000 + 1 },
    { name: '999 ms past a second rounds up to the next', ms: NOW_MS + 999, seconds: NOW_MS / 1000 + 1 },
    { name: 'a fractional millisecond rounds up', ms: NOW_MS + 0.5, seconds: NOW_MS / 1000 + 1 },
    { name: 'the first millisecond after the epoch is 1 s', ms: 1, seconds: 1 },
    { name: 'the epoch itself is clamped to 1 s (expired, not the empty marker)', ms: 0, seconds: 1 },
    { name: 'a negative expiry is clamped to 1 s', ms: -5000, seconds: 1 },
    { name: 'NaN is clamped to 1 s (never live)', ms: Number.NaN, seconds: 1 },
    { name: 'the last representable second is kept', ms: MAX_EXPIRY_S * 1000, seconds: MAX_EXPIRY_S },
    { name: 'beyond 2106 is clamped to the last second', ms: MAX_EXPIRY_S * 1000 + 1, seconds: MAX_EXPIRY_S },
    { name: 'Infinity is clamped to the last second', ms: Number.POSITIVE_INFINITY, seconds: MAX_EXPIRY_S },
  ];
  for (const { name, ms, seconds } of cases) {
    test(name, () => assert.equal(expirySeconds(ms), seconds));
  }

  test('an entry may live up to 999 ms longer than asked, never shorter', () => {
    const table = new FingerprintTable();
    table.merge('k', NOW_MS + 1);
    assert.equal(table.isLive('k', NOW_MS), true);
    assert.equal(table.isLive('k', NOW_MS + 999), true, 'kept to the end of the second');
    assert.equal(table.isLive('k', NOW_MS + 1000), false, 'the rounded expiry instant is exclusive');
    assert.equal(table.expiresAtMs('k'), NOW_MS + 1000);
  });
});

describe('FingerprintTable: fingerprints', () => {
  test('the same text gives the same fingerprint, whatever string object carries it', () => {
    const uuid = randomUUID();
    const copy = uuid.split('').join('');
    assert.deepEqual(fingerprintKey(uuid), fingerprintKey(copy));
  });

  test('fingerprints are two unsigned 32-bit words', () => {
    for (const key of ['', 'a', randomUUID(), 'x'.repeat(10_000)]) {
      for (const word of fingerprintKey(key)) {
        assert.ok(Number.isInteger(word) && word >= 0 && word < 2 ** 32, `${word} for ${key.slice(0, 20)}`);
      }
    }
  });

  const distinct: ReadonlyArray<readonly [string, string]> = [
    ['', 'a'],
    ['a', 'b'],
    ['ab', 'ba'],
    ['a', 'a\u0000'],
    ['\u0000', '\u0000\u0000'],
    ['jti-1', 'jti-2'],
    ['\u{1F600}', '\u{1F601}'],
    ['\ud800', '\udc00'],
    ['é', 'e\u0301'],
    ['AAAA', 'AAAB'],
  ];
  for (const [a, b] of distinct) {
    test(`${JSON.stringify(a)} and ${JSON.stringify(b)} have different fingerprints`, () => {
      assert.notDeepEqual(fingerprintKey(a), fingerprintKey(b));
    });
  }

  test('200k UUIDs: no 64-bit collision, and home slots spread evenly', () => {
    const seen = new Set<string>();
    const buckets = new Uint32Array(256);
    const count = 200_000;
    for (let i = 0; i < count; i++) {
      const [hi, lo] = fingerprintKey(randomUUID());
      seen.add(`${hi}:${lo}`);
      buckets[lo & 255]! += 1;
    }
    assert.equal(seen.size, count);
    const expected = count / 256;
    // Binomial standard deviation ≈ 28; 8σ leaves no room for a flaky failure, only for a broken mix.
    for (const bucket of buckets)
      assert.ok(Math.abs(bucket - expected) < 8 * Math.sqrt(expected), `${bucket}`);
  });

  test('keys differing in one character anywhere in a long string differ', () => {
    const base = 'q'.repeat(64);
    const fingerprints = new Set<string>([fingerprintKey(base).join(':')]);
    for (let i = 0; i < base.length; i++) {
      fingerprints.add(fingerprintKey(`${base.slice(0, i)}r${base.slice(i + 1)}`).join(':'));
    }
    assert.equal(fingerprints.size, base.length + 1);
  });
});

describe('FingerprintTable: insert, lookup, merge, expiry', () => {
  type Op =
    | { readonly merge: string; readonly expiresAtMs: number }
    | { readonly delete: string; readonly expect: boolean }
    | { readonly prune: number; readonly dropped: number };
  const cases: ReadonlyArray<{
    name: string;
    ops: readonly Op[];
    size: number;
    /** key → expected stored expiry (undefined: absent). */
    stored: Readonly<Record<string, number | undefined>>;
    /** [key, nowMs, live?] */
    live: ReadonlyArray<readonly [string, number, boolean]>;
  }> = [
    {
      name: 'an empty table holds nothing',
      ops: [],
      size: 0,
      stored: { a: undefined, '': undefined },
      live: [['a', NOW_MS, false]],
    },
    {
      name: 'an added key is live until its expiry, exclusive',
      ops: [{ merge: 'a', expiresAtMs: NOW_MS + 1000 }],
      size: 1,
      stored: { a: NOW_MS + 1000, b: undefined },
      live: [
        ['a', NOW_MS, true],
        ['a', NOW_MS + 999, true],
        ['a', NOW_MS + 1000, false],
        ['b', NOW_MS, false],
      ],
    },
    {
      name: 'the empty string is a key like any other',
      ops: [{ merge: '', expiresAtMs: NOW_MS + 1000 }],
      size: 1,
      stored: { '': NOW_MS + 1000, a: undefined },
      live: [['', NOW_MS, true]],
    },
    {
      name: 'a later expiry extends the entry',
      ops: [
        { merge: 'a', expiresAtMs: NOW_MS + 1000 },
        { merge: 'a', expiresAtMs: NOW_MS + 5000 },
      ],
      size: 1,
      stored: { a: NOW_MS + 5000 },
      live: [['a', NOW_MS + 4999, true]],
    },
    {
      name: 'an earlier expiry arriving second does not shorten the entry',
      ops: [
        { merge: 'a', expiresAtMs: NOW_MS + 5000 },
        { merge: 'a', expiresAtMs: NOW_MS + 1000 },
      ],
      size: 1,
      stored: { a: NOW_MS + 5000 },
      live: [['a', NOW_MS + 4999, true]],
    },
    {
      name: 'an expired entry is absent to lookups but still counted until pruned',
      ops: [{ merge: 'a', expiresAtMs: NOW_MS - 1000 }],
      size: 1,
      stored: { a: NOW_MS - 1000 },
      live: [['a', NOW_MS, false]],
    },
    {
      name: 'merging into an expired, unpruned entry revives it with the later expiry',
      ops: [
        { merge: 'a', expiresAtMs: NOW_MS - 1000 },
        { merge: 'a', expiresAtMs: NOW_MS + 1000 },
      ],
      size: 1,
      stored: { a: NOW_MS + 1000 },
      live: [['a', NOW_MS, true]],
    },
    {
      name: 'prune drops entries at or before now and keeps the others',
      ops: [
        { merge: 'a', expiresAtMs: NOW_MS },
        { merge: 'b', expiresAtMs: NOW_MS + 1 },
        { merge: 'c', expiresAtMs: NOW_MS - 60_000 },
        { prune: NOW_MS, dropped: 2 },
        { prune: NOW_MS, dropped: 0 },
      ],
      size: 1,
      stored: { a: undefined, b: NOW_MS + 1000, c: undefined },
      live: [['b', NOW_MS + 999, true]],
    },
    {
      name: 'prune goes by the rounded-up expiry',
      ops: [
        { merge: 'a', expiresAtMs: NOW_MS + 1 },
        { prune: NOW_MS + 999, dropped: 0 },
        { prune: NOW_MS + 1000, dropped: 1 },
      ],
      size: 0,
      stored: { a: undefined },
      live: [],
    },
    {
      name: 'delete removes one key and reports whether it was there',
      ops: [
        { merge: 'a', expiresAtMs: NOW_MS + 1000 },
        { merge: 'b', expiresAtMs: NOW_MS + 1000 },
        { delete: 'a', expect: true },
        { delete: 'a', expect: false },
        { delete: 'never', expect: false },
      ],
      size: 1,
      stored: { a: undefined, b: NOW_MS + 1000 },
      live: [
        ['a', NOW_MS, false],
        ['b', NOW_MS, true],
      ],
    },
    {
      name: 'a deleted key can be added again',
      ops: [
        { merge: 'a', expiresAtMs: NOW_MS + 5000 },
        { delete: 'a', expect: true },
        { merge: 'a', expiresAtMs: NOW_MS + 1000 },
      ],
      size: 1,
      stored: { a: NOW_MS + 1000 },
      live: [['a', NOW_MS + 1000, false]],
    },
  ];

  for (const { name, ops, size, stored, live } of cases) {
    test(name, () => {
      const table = new FingerprintTable();
      for (const op of ops) {
        if ('merge' in op) table.merge(op.merge, op.expiresAtMs);
        else if ('delete' in op) assert.equal(table.delete(op.delete), op.expect, `delete ${op.delete}`);
        else assert.equal(table.prune(op.prune), op.dropped, `prune at ${op.prune}`);
      }
      assert.equal(table.size, size);
      for (const [key, expected] of Object.entries(stored))
        assert.equal(table.expiresAtMs(key), expected, key);
      for (const [key, nowMs, expected] of live)
        assert.equal(table.isLive(key, nowMs), expected, `${key}@${nowMs}`);
      assertShape(table);
    });
  }

  test('clear empties the table and returns it to the smallest capacity', () => {
    const table = new FingerprintTable();
    for (let i = 0; i < 1000; i++) table.merge(`k${i}`, NOW_MS + 1000);
    assert.ok(table.capacity > 16);
    table.clear();
    assert.equal(table.size, 0);
    assert.equal(table.capacity, 16);
    assert.equal(table.isLive('k1', NOW_MS), false);
    table.merge('k1', NOW_MS + 1000);
    assert.equal(table.isLive('k1', NOW_MS), true);
  });
});

describe('FingerprintTable: growth and shrinking', () => {
  test('grows past several doublings, keeping every entry and the load factor ≤ 0.7', () => {
    const table = new FingerprintTable();
    const keys = Array.from({ length: 50_000 }, (_, i) => `key-${i}`);
    const capacities = new Set<number>([table.capacity]);
    for (const [i, key] of keys.entries()) {
      table.merge(key, NOW_MS + 1000 + (i % 7) * 1000);
      capacities.add(table.capacity);
      if (i % 997 === 0) assertShape(table, `after ${i + 1} inserts`);
    }
    assert.equal(table.size, keys.length);
    assert.equal(table.capacity, 2 ** 17, '50k entries need 2^17 slots at a load factor ≤ 0.7');
    assert.ok(capacities.size >= 13, `doubled ${capacities.size - 1} times`);
    for (const [i, key] of keys.entries())
      assert.equal(table.expiresAtMs(key), NOW_MS + 1000 + (i % 7) * 1000);
    assert.equal(table.isLive('key-50000', NOW_MS), false);
  });

  test('the constructor and reserve make room up front', () => {
    assert.equal(new FingerprintTable(1_000_000).capacity, 2 ** 21);
    assert.equal(new FingerprintTable(11).capacity, 16);
    assert.equal(new FingerprintTable(12).capacity, 32);
    const table = new FingerprintTable();
    table.merge('a', NOW_MS + 1000);
    table.reserve(1000);
    assert.equal(table.capacity, 2048);
    assert.equal(table.isLive('a', NOW_MS), true);
    table.reserve(10);
    assert.equal(table.capacity, 2048, 'reserve never shrinks');
  });

  test('a prune that leaves the table nearly empty shrinks it, keeping the survivors', () => {
    const table = new FingerprintTable();
    for (let i = 0; i < 10_000; i++) table.merge(`k${i}`, i < 100 ? NOW_MS + 60_000 : NOW_MS + 1000);
    assert.equal(table.capacity, 16_384);
    assert.equal(table.prune(NOW_MS + 1000), 9900);
    assert.equal(table.size, 100);
    assert.ok(table.capacity <= 512, `capacity ${table.capacity}`);
    assertShape(table);
    for (let i = 0; i < 100; i++) assert.equal(table.isLive(`k${i}`, NOW_MS + 1000), true);
    assert.equal(table.prune(NOW_MS + 60_000), 100);
    assert.equal(table.size, 0);
  });
});

describe('FingerprintTable: deletion keeps probe chains intact', () => {
  // Fingerprints chosen by hand: the home slot is the low word masked by the capacity (16 here), so entries with
  // equal low bits pile up in one probe run.
  const HOME = 13; // near the end, so runs wrap around to slot 0

  test('removing the head, middle or tail of one run leaves the others reachable', () => {
    for (let victim = 0; victim < 6; victim++) {
      const table = new FingerprintTable();
      for (let n = 0; n < 6; n++) table.mergeFingerprint(n, HOME + 16 * n, NOW_MS + 1000);
      assert.equal(table.capacity, 16);
      assert.equal(table.deleteFingerprint(victim, HOME + 16 * victim), true);
      for (let n = 0; n < 6; n++) {
        assert.equal(
          table.isLiveFingerprint(n, HOME + 16 * n, NOW_MS),
          n !== victim,
          `entry ${n} after deleting ${victim}`,
        );
      }
      assert.equal(table.size, 5);
    }
  });

  test('interleaved runs of different homes survive deletions and pruning across the wrap-around', () => {
    const table = new FingerprintTable();
    // Homes 14, 15 and 0 interleave in slots 14, 15, 0, 1, …; expiries alternate between two instants.
    const entries: Array<{ hi: number; lo: number; expiresAtMs: number }> = [];
    for (let n = 0; n < 9; n++) {
      const entry = {
        hi: 100 + n,
        lo: ((14 + (n % 3)) % 16) + 16 * n,
        expiresAtMs: NOW_MS + (n % 2 ? 2000 : 1000),
      };
      entries.push(entry);
      table.mergeFingerprint(entry.hi, entry.lo, entry.expiresAtMs);
    }
    assert.equal(table.capacity, 16);
    assert.equal(table.prune(NOW_MS + 1000), 5);
    for (const { hi, lo, expiresAtMs } of entries) {
      assert.equal(table.isLiveFingerprint(hi, lo, NOW_MS + 1000), expiresAtMs > NOW_MS + 1000, `${hi}`);
      assert.equal(
        table.expiresAtMsOfFingerprint(hi, lo),
        expiresAtMs > NOW_MS + 1000 ? expiresAtMs : undefined,
      );
    }
  });

  test('the same low word with different high words are different entries', () => {
    const table = new FingerprintTable();
    table.mergeFingerprint(1, 7, NOW_MS + 1000);
    table.mergeFingerprint(2, 7, NOW_MS + 2000);
    assert.equal(table.size, 2);
    assert.equal(table.expiresAtMsOfFingerprint(1, 7), NOW_MS + 1000);
    assert.equal(table.expiresAtMsOfFingerprint(2, 7), NOW_MS + 2000);
    assert.equal(table.expiresAtMsOfFingerprint(3, 7), undefined);
  });

  test('a crowded table of colliding fingerprints matches a Map model over 100k random operations', () => {
    // Only 64 low words and 8 high words: heavy clustering and long runs. The homes are the 64 slots around slot 0
    // (−32 … 31 modulo the capacity), so the runs wrap around the end of the table at every capacity.
    const random = prng(0xfeed);
    const table = new FingerprintTable();
    const model = new Map<string, number>();
    let nowMs = NOW_MS;
    for (let step = 0; step < 100_000; step++) {
      const hi = Math.floor(random() * 8);
      const lo = (Math.floor(random() * 64) - 32) * 0x1000_0001;
      const key = `${hi}:${lo >>> 0}`;
      const roll = random();
      if (roll < 0.45) {
        const expiresAtMs = nowMs + Math.floor(random() * 20_000);
        table.mergeFingerprint(hi, lo, expiresAtMs);
        const current = model.get(key);
        if (current === undefined || current < rounded(expiresAtMs)) model.set(key, rounded(expiresAtMs));
      } else if (roll < 0.6) {
        assert.equal(table.deleteFingerprint(hi, lo), model.delete(key), `step ${step}: delete ${key}`);
      } else if (roll < 0.62) {
        nowMs += Math.floor(random() * 3000);
        let dropped = 0;
        for (const [k, expiry] of model) {
          if (expiry <= nowMs) {
            model.delete(k);
            dropped += 1;
          }
        }
        assert.equal(table.prune(nowMs), dropped, `step ${step}: prune`);
      } else {
        const expected = model.get(key);
        assert.equal(table.expiresAtMsOfFingerprint(hi, lo), expected, `step ${step}: ${key}`);
        assert.equal(table.isLiveFingerprint(hi, lo, nowMs), expected !== undefined && expected > nowMs);
      }
      assert.equal(table.size, model.size, `step ${step}: size`);
    }
    assertShape(table);
  });
});

describe('FingerprintTable: matches a Map model over a seeded random operation sequence', () => {
  for (const seed of [1, 2, 3]) {
    test(`seed ${seed}: 100k merges, lookups, deletes, prunes and the odd clear over 5000 keys`, () => {
      const random = prng(seed);
      const keys = Array.from({ length: 5000 }, (_, i) => (i % 2 ? randomUUID() : `k${i}`));
      const table = new FingerprintTable();
      const model = new Map<string, number>();
      let nowMs = NOW_MS;
      let maxCapacity = 0;
      const check = (key: string, step: number) => {
        const expected = model.get(key);
        assert.equal(table.expiresAtMs(key), expected, `step ${step}: ${key}`);
        assert.equal(
          table.isLive(key, nowMs),
          expected !== undefined && expected > nowMs,
          `step ${step}: live`,
        );
      };
      for (let step = 0; step < 100_000; step++) {
        // Bursts of inserts grow the table, bursts of expiry shrink it: the key range in use drifts.
        const key = keys[Math.floor(random() * keys.length)]!;
        const roll = random();
        if (roll < 0.5) {
          const expiresAtMs = nowMs - 2000 + Math.floor(random() * 120_000);
          table.merge(key, expiresAtMs);
          const current = model.get(key);
          if (current === undefined || current < rounded(expiresAtMs)) model.set(key, rounded(expiresAtMs));
        } else if (roll < 0.6) {
          assert.equal(table.delete(key), model.delete(key), `step ${step}: delete`);
        } else if (roll < 0.605) {
          nowMs += Math.floor(random() * 4000);
          let dropped = 0;
          for (const [k, expiry] of model) {
            if (expiry <= nowMs) {
              model.delete(k);
              dropped += 1;
            }
          }
          assert.equal(table.prune(nowMs), dropped, `step ${step}: prune`);
        } else if (roll < 0.6052) {
          table.clear();
          model.clear();
        } else {
          check(key, step);
        }
        assert.equal(table.size, model.size, `step ${step}: size`);
        maxCapacity = Math.max(maxCapacity, table.capacity);
        if (step % 5000 === 0) {
          assertShape(table, `step ${step}`);
          for (const k of model.keys()) check(k, step);
        }
      }
      for (const k of keys) check(k, -1);
      assert.ok(maxCapacity >= 2048, `grew to ${maxCapacity}`);
    });
  }
});
