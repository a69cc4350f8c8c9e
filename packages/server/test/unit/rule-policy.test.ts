import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Rule } from '@revokd/guard';
import { type RuleLifetimes, ruleFor, type Target } from '../../src/core/rule-policy.ts';

const NOW_MS = Date.UTC(2026, 0, 1);
const NOW_US = NOW_MS * 1000 + 123;
const LIFETIMES: RuleLifetimes = { maxAccessTokenTtlMs: 3_600_000, clockSkewMs: 30_000 };
/** Every token issued up to now has expired, on every guard's clock. */
const COVER_ALL = NOW_MS + 3_600_000 + 30_000;

describe('ruleFor', () => {
  const cases: ReadonlyArray<{ name: string; target: Target; expected: Rule }> = [
    {
      name: 'a token rule lives until the token exp plus clock skew, not the longest lifetime',
      target: { kind: 'token', jti: 'j1', tokenExpiresAtMs: NOW_MS + 300_000 },
      expected: { kind: 'token', jti: 'j1', expiresAtMs: NOW_MS + 300_000 + 30_000 },
    },
    {
      name: 'a session rule lives until the longest access-token lifetime plus skew',
      target: { kind: 'session', sid: 's1' },
      expected: { kind: 'session', sid: 's1', expiresAtMs: COVER_ALL },
    },
    {
      name: 'a family rule lives until the longest access-token lifetime plus skew',
      target: { kind: 'family', fid: 'f1' },
      expected: { kind: 'family', fid: 'f1', expiresAtMs: COVER_ALL },
    },
    {
      name: 'a subject rule is not-before now (µs) and lives until the longest lifetime plus skew',
      target: { kind: 'subject', sub: 'alice' },
      expected: { kind: 'subject', sub: 'alice', notBeforeUs: NOW_US, expiresAtMs: COVER_ALL },
    },
    {
      name: 'a client rule is not-before now (µs) and lives until the longest lifetime plus skew',
      target: { kind: 'client', clientId: 'app' },
      expected: { kind: 'client', clientId: 'app', notBeforeUs: NOW_US, expiresAtMs: COVER_ALL },
    },
    {
      name: 'a global rule is not-before now (µs) and lives until the longest lifetime plus skew',
      target: { kind: 'global' },
      expected: { kind: 'global', notBeforeUs: NOW_US, expiresAtMs: COVER_ALL },
    },
    {
      name: 'a claim rule is not-before now (µs) and lives until the longest lifetime plus skew',
      target: { kind: 'claim', claim: 'roles', value: 'admin' },
      expected: {
        kind: 'claim',
        claim: 'roles',
        value: 'admin',
        notBeforeUs: NOW_US,
        expiresAtMs: COVER_ALL,
      },
    },
  ];

  for (const { name, target, expected } of cases) {
    test(name, () => {
      assert.deepEqual(ruleFor(target, NOW_MS, NOW_US, LIFETIMES), expected);
    });
  }

  test('with no clock skew a token rule expires exactly at the token exp', () => {
    const rule = ruleFor({ kind: 'token', jti: 'j1', tokenExpiresAtMs: NOW_MS + 5000 }, NOW_MS, NOW_US, {
      maxAccessTokenTtlMs: 3_600_000,
      clockSkewMs: 0,
    });
    assert.equal(rule.expiresAtMs, NOW_MS + 5000);
  });

  test('a token rule does not depend on the current time', () => {
    const target: Target = { kind: 'token', jti: 'j1', tokenExpiresAtMs: NOW_MS + 5000 };
    assert.deepEqual(
      ruleFor(target, NOW_MS, NOW_US, LIFETIMES),
      ruleFor(target, NOW_MS + 1000, NOW_US + 1_000_000, LIFETIMES),
    );
  });
});
