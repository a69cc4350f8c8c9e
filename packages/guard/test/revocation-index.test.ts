import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type LogEntry,
  REVOCATION_KINDS,
  type RevocationDecision,
  RevocationIndex,
  type RevocationKind,
  RULE_KINDS,
  type Rule,
  type TokenFacts,
  tokenFacts,
} from '../src/index.ts';

/** 2026-01-01T00:00:00Z, a whole second. */
const NOW_MS = Date.UTC(2026, 0, 1);
const SECOND = Math.floor(NOW_MS / 1000);
/** A not-before instant in the middle of second SECOND. */
const RULE_US = SECOND * 1_000_000 + 500_000;
const RULE_EXPIRES_MS = NOW_MS + 3_600_000;

/** A verified access-token payload issued 100 ms before RULE_US, carrying every fact a rule can match. */
function payload(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: 'https://revokd.test',
    sub: 'alice',
    client_id: 'app',
    sid: 'session-1',
    fid: 'family-1',
    jti: 'jti-1',
    iat: SECOND,
    iat_us: RULE_US - 100_000,
    exp: SECOND + 300,
    ...extra,
  };
}

/** A token issued at exactly `issuedAtUs` (with a matching `iat`). */
function issuedAt(issuedAtUs: number, extra: Record<string, unknown> = {}): TokenFacts {
  return tokenFacts(payload({ iat: Math.floor(issuedAtUs / 1_000_000), iat_us: issuedAtUs, ...extra }));
}

function indexWith(...rules: Rule[]): RevocationIndex {
  const index = new RevocationIndex();
  for (const rule of rules) index.add(rule);
  return index;
}

/** Outcome as `by` kind, or null when accepted. */
function outcome(
  index: RevocationIndex,
  token: TokenFacts,
  nowMs = NOW_MS,
): (RevocationDecision & { revoked: true })['by'] | null {
  const decision = index.check(token, nowMs);
  return decision.revoked ? decision.by : null;
}

/** One rule of each kind, matching the default payload, expiring at `expiresAtMs`. */
function ruleOfKind(kind: RevocationKind, expiresAtMs = RULE_EXPIRES_MS, notBeforeUs = RULE_US): Rule {
  switch (kind) {
    case 'token':
      return { kind, jti: 'jti-1', expiresAtMs };
    case 'session':
      return { kind, sid: 'session-1', expiresAtMs };
    case 'family':
      return { kind, fid: 'family-1', expiresAtMs };
    case 'subject':
      return { kind, sub: 'alice', notBeforeUs, expiresAtMs };
    case 'client':
      return { kind, clientId: 'app', notBeforeUs, expiresAtMs };
    case 'global':
      return { kind, notBeforeUs, expiresAtMs };
    case 'claim':
      return { kind, claim: 'role', value: 'admin', notBeforeUs, expiresAtMs };
  }
}

const NOT_BEFORE_KINDS: readonly RevocationKind[] = ['subject', 'client', 'global', 'claim'];

describe('RevocationIndex: which tokens each rule kind rejects', () => {
  const before = RULE_US - 1;
  const after = RULE_US + 1;
  const cases: ReadonlyArray<{
    name: string;
    rule: Rule;
    token: TokenFacts;
    expected: RevocationKind | null;
  }> = [
    {
      name: 'a token rule rejects the token with that jti',
      rule: { kind: 'token', jti: 'jti-1', expiresAtMs: RULE_EXPIRES_MS },
      token: tokenFacts(payload()),
      expected: 'token',
    },
    {
      name: 'a token rule accepts a token with another jti',
      rule: { kind: 'token', jti: 'jti-1', expiresAtMs: RULE_EXPIRES_MS },
      token: tokenFacts(payload({ jti: 'jti-2' })),
      expected: null,
    },
    {
      name: 'a token rule accepts a token without jti',
      rule: { kind: 'token', jti: 'jti-1', expiresAtMs: RULE_EXPIRES_MS },
      token: tokenFacts(payload({ jti: undefined })),
      expected: null,
    },
    {
      name: 'a session rule rejects every token with that sid, whenever issued',
      rule: { kind: 'session', sid: 'session-1', expiresAtMs: RULE_EXPIRES_MS },
      token: issuedAt(after),
      expected: 'session',
    },
    {
      name: 'a session rule accepts a token of another session',
      rule: { kind: 'session', sid: 'session-1', expiresAtMs: RULE_EXPIRES_MS },
      token: tokenFacts(payload({ sid: 'session-2' })),
      expected: null,
    },
    {
      name: 'a session rule accepts a token without sid (client credentials)',
      rule: { kind: 'session', sid: 'session-1', expiresAtMs: RULE_EXPIRES_MS },
      token: tokenFacts(payload({ sid: undefined })),
      expected: null,
    },
    {
      name: 'a family rule rejects every token minted from that refresh family',
      rule: { kind: 'family', fid: 'family-1', expiresAtMs: RULE_EXPIRES_MS },
      token: issuedAt(after),
      expected: 'family',
    },
    {
      name: 'a family rule accepts a token of another family',
      rule: { kind: 'family', fid: 'family-1', expiresAtMs: RULE_EXPIRES_MS },
      token: tokenFacts(payload({ fid: 'family-2' })),
      expected: null,
    },
    {
      name: 'a subject rule rejects a token of that subject issued before it',
      rule: ruleOfKind('subject'),
      token: issuedAt(before),
      expected: 'subject',
    },
    {
      name: 'a subject rule accepts a token of that subject issued after it',
      rule: ruleOfKind('subject'),
      token: issuedAt(after),
      expected: null,
    },
    {
      name: 'a subject rule accepts a token of another subject issued before it',
      rule: ruleOfKind('subject'),
      token: issuedAt(before, { sub: 'bob' }),
      expected: null,
    },
    {
      name: 'a client rule rejects a token of that client issued before it',
      rule: ruleOfKind('client'),
      token: issuedAt(before),
      expected: 'client',
    },
    {
      name: 'a client rule accepts a token of that client issued after it',
      rule: ruleOfKind('client'),
      token: issuedAt(after),
      expected: null,
    },
    {
      name: 'a client rule accepts a token of another client issued before it',
      rule: ruleOfKind('client'),
      token: issuedAt(before, { client_id: 'other-app' }),
      expected: null,
    },
    {
      name: 'a global rule rejects any token issued before it',
      rule: ruleOfKind('global'),
      token: issuedAt(before, { sub: 'bob', client_id: 'other-app', sid: undefined, fid: undefined }),
      expected: 'global',
    },
    {
      name: 'a global rule accepts a token issued after it',
      rule: ruleOfKind('global'),
      token: issuedAt(after),
      expected: null,
    },
    {
      name: 'a claim rule rejects a token whose string claim has the value, issued before it',
      rule: ruleOfKind('claim'),
      token: issuedAt(before, { role: 'admin' }),
      expected: 'claim',
    },
    {
      name: 'a claim rule accepts a token whose string claim has another value',
      rule: ruleOfKind('claim'),
      token: issuedAt(before, { role: 'user' }),
      expected: null,
    },
    {
      name: 'a claim rule accepts a token with the value issued after it',
      rule: ruleOfKind('claim'),
      token: issuedAt(after, { role: 'admin' }),
      expected: null,
    },
    {
      name: 'a claim rule accepts a token without that claim',
      rule: ruleOfKind('claim'),
      token: issuedAt(before),
      expected: null,
    },
    {
      name: 'a claim rule accepts a token carrying the value under another claim name',
      rule: ruleOfKind('claim'),
      token: issuedAt(before, { group: 'admin' }),
      expected: null,
    },
    {
      name: 'a claim rule rejects a token whose array claim contains the value, issued before it',
      rule: {
        kind: 'claim',
        claim: 'roles',
        value: 'admin',
        notBeforeUs: RULE_US,
        expiresAtMs: RULE_EXPIRES_MS,
      },
      token: issuedAt(before, { roles: ['user', 'admin'] }),
      expected: 'claim',
    },
    {
      name: 'a claim rule accepts a token whose array claim lacks the value',
      rule: {
        kind: 'claim',
        claim: 'roles',
        value: 'admin',
        notBeforeUs: RULE_US,
        expiresAtMs: RULE_EXPIRES_MS,
      },
      token: issuedAt(before, { roles: ['user', 'auditor'] }),
      expected: null,
    },
    {
      name: 'a claim rule accepts a token whose array claim contains the value, issued after it',
      rule: {
        kind: 'claim',
        claim: 'roles',
        value: 'admin',
        notBeforeUs: RULE_US,
        expiresAtMs: RULE_EXPIRES_MS,
      },
      token: issuedAt(after, { roles: ['admin'] }),
      expected: null,
    },
    {
      name: 'a claim rule ignores non-string items of an array claim',
      rule: {
        kind: 'claim',
        claim: 'roles',
        value: 'admin',
        notBeforeUs: RULE_US,
        expiresAtMs: RULE_EXPIRES_MS,
      },
      token: issuedAt(before, { roles: [{ admin: true }, ['admin'], 1] }),
      expected: null,
    },
    {
      name: 'a claim rule does not match an object claim that merely has the value as a key',
      rule: ruleOfKind('claim'),
      token: issuedAt(before, { role: { admin: 'admin' } }),
      expected: null,
    },
  ];

  for (const { name, rule, token, expected } of cases) {
    test(name, () => {
      assert.equal(outcome(indexWith(rule), token), expected);
    });
  }

  test('an empty index accepts every token', () => {
    assert.deepEqual(new RevocationIndex().check(tokenFacts(payload()), NOW_MS), { revoked: false });
  });

  test('a claim rule on one value leaves other values of the same claim unaffected', () => {
    const index = indexWith(
      { kind: 'claim', claim: 'roles', value: 'admin', notBeforeUs: RULE_US, expiresAtMs: RULE_EXPIRES_MS },
      { kind: 'claim', claim: 'dept', value: 'sales', notBeforeUs: RULE_US, expiresAtMs: RULE_EXPIRES_MS },
    );
    assert.equal(outcome(index, issuedAt(before, { roles: ['user'], dept: 'eng' })), null);
    assert.equal(outcome(index, issuedAt(before, { roles: ['user'], dept: 'sales' })), 'claim');
    assert.equal(outcome(index, issuedAt(before, { roles: 'admin' })), 'claim');
  });
});

describe('RevocationIndex: the not-before edge is finer than a second', () => {
  for (const kind of NOT_BEFORE_KINDS) {
    const extra = kind === 'claim' ? { role: 'admin' } : {};
    test(`a ${kind} rule accepts a token issued 1 µs after it, in the same second`, () => {
      assert.equal(outcome(indexWith(ruleOfKind(kind)), issuedAt(RULE_US + 1, extra)), null);
    });
    test(`a ${kind} rule accepts a token issued at its exact instant`, () => {
      assert.equal(outcome(indexWith(ruleOfKind(kind)), issuedAt(RULE_US, extra)), null);
    });
    test(`a ${kind} rule rejects a token issued 1 µs before it`, () => {
      assert.equal(outcome(indexWith(ruleOfKind(kind)), issuedAt(RULE_US - 1, extra)), kind);
    });
    test(`a ${kind} rule rejects a token with only iat when its second starts before the rule (fail closed)`, () => {
      // Issued in the rule's second, possibly after the rule, but nothing proves it.
      const token = tokenFacts(payload({ iat: SECOND, iat_us: undefined, ...extra }));
      assert.equal(token.exactIssuedAt, false);
      assert.equal(outcome(indexWith(ruleOfKind(kind)), token), kind);
    });
    test(`a ${kind} rule accepts a token with only iat when its whole second is after the rule`, () => {
      const token = tokenFacts(payload({ iat: SECOND + 1, iat_us: undefined, ...extra }));
      assert.equal(outcome(indexWith(ruleOfKind(kind)), token), null);
    });
  }

  test('a rule on a whole-second boundary accepts a token with only iat in that second', () => {
    const boundary = (SECOND + 1) * 1_000_000;
    const index = indexWith(ruleOfKind('subject', RULE_EXPIRES_MS, boundary));
    assert.equal(outcome(index, tokenFacts(payload({ iat: SECOND + 1, iat_us: undefined }))), null);
    assert.equal(outcome(index, tokenFacts(payload({ iat: SECOND, iat_us: undefined }))), 'subject');
  });

  test('a token without iat at all is rejected by any not-before rule', () => {
    const token = tokenFacts(payload({ iat: undefined, iat_us: undefined }));
    assert.equal(token.issuedAtUs, 0);
    assert.equal(outcome(indexWith(ruleOfKind('global')), token), 'global');
  });
});

describe('tokenFacts', () => {
  test('extracts jti, sub, client_id, sid, fid and the exact issuance time', () => {
    const facts = tokenFacts(payload());
    assert.deepEqual(
      {
        jti: facts.jti,
        sub: facts.sub,
        clientId: facts.clientId,
        sid: facts.sid,
        fid: facts.fid,
        issuedAtUs: facts.issuedAtUs,
        exactIssuedAt: facts.exactIssuedAt,
      },
      {
        jti: 'jti-1',
        sub: 'alice',
        clientId: 'app',
        sid: 'session-1',
        fid: 'family-1',
        issuedAtUs: RULE_US - 100_000,
        exactIssuedAt: true,
      },
    );
  });

  test('treats identifiers that are not strings as absent', () => {
    const facts = tokenFacts(payload({ jti: 1, sub: null, client_id: ['app'], sid: {}, fid: true }));
    assert.deepEqual(
      [facts.jti, facts.sub, facts.clientId, facts.sid, facts.fid],
      [undefined, undefined, undefined, undefined, undefined],
    );
  });

  const ignoredIatUs: ReadonlyArray<{ name: string; iat: number; iatUs: unknown }> = [
    { name: 'iat_us in the second after iat', iat: SECOND, iatUs: (SECOND + 1) * 1_000_000 + 5 },
    { name: 'iat_us in the second before iat', iat: SECOND + 1, iatUs: RULE_US - 1 },
    { name: 'iat_us that is not an integer', iat: SECOND, iatUs: RULE_US + 0.5 },
    { name: 'iat_us given as a string', iat: SECOND, iatUs: String(RULE_US + 1) },
    { name: 'iat_us beyond the safe integer range', iat: SECOND, iatUs: 2 ** 60 },
  ];
  for (const { name, iat, iatUs } of ignoredIatUs) {
    test(`ignores ${name} and falls back to iat's second`, () => {
      const facts = tokenFacts(payload({ iat, iat_us: iatUs }));
      assert.equal(facts.exactIssuedAt, false);
      assert.equal(facts.issuedAtUs, iat * 1_000_000);
    });
  }

  test('an iat_us claiming a later second cannot lift a token over a not-before rule', () => {
    const token = tokenFacts(payload({ iat: SECOND, iat_us: (SECOND + 1) * 1_000_000 }));
    assert.equal(outcome(indexWith(ruleOfKind('subject')), token), 'subject');
  });

  test('iat_us without iat is ignored', () => {
    const facts = tokenFacts(payload({ iat: undefined, iat_us: RULE_US + 1 }));
    assert.equal(facts.exactIssuedAt, false);
    assert.equal(facts.issuedAtUs, 0);
  });

  test('exposes the payload for claim rules', () => {
    const body = payload({ roles: ['admin'] });
    assert.equal(tokenFacts(body).claims, body);
  });
});

describe('RevocationIndex: merging repeated rules', () => {
  test('"revoke everything of a user" repeated many times is still one entry', () => {
    const index = new RevocationIndex();
    for (let i = 0; i < 1000; i++) {
      index.add({
        kind: 'subject',
        sub: 'alice',
        notBeforeUs: RULE_US + i,
        expiresAtMs: RULE_EXPIRES_MS + i,
      });
    }
    assert.equal(index.size, 1);
  });

  for (const kind of REVOCATION_KINDS) {
    test(`two ${kind} rules for the same key count as one entry`, () => {
      const index = indexWith(ruleOfKind(kind), ruleOfKind(kind, RULE_EXPIRES_MS + 1000, RULE_US + 1000));
      assert.equal(index.size, 1);
    });
  }

  test('rules for different keys are separate entries', () => {
    const index = indexWith(
      { kind: 'token', jti: 'a', expiresAtMs: RULE_EXPIRES_MS },
      { kind: 'token', jti: 'b', expiresAtMs: RULE_EXPIRES_MS },
      { kind: 'claim', claim: 'roles', value: 'admin', notBeforeUs: RULE_US, expiresAtMs: RULE_EXPIRES_MS },
      { kind: 'claim', claim: 'roles', value: 'ops', notBeforeUs: RULE_US, expiresAtMs: RULE_EXPIRES_MS },
      { kind: 'claim', claim: 'dept', value: 'admin', notBeforeUs: RULE_US, expiresAtMs: RULE_EXPIRES_MS },
    );
    assert.equal(index.size, 5);
  });

  for (const kind of NOT_BEFORE_KINDS) {
    test(`a later ${kind} rule moves the not-before forward and extends the expiry`, () => {
      const extra = kind === 'claim' ? { role: 'admin' } : {};
      const later = RULE_US + 10_000_000;
      const index = indexWith(ruleOfKind(kind), ruleOfKind(kind, RULE_EXPIRES_MS + 10_000, later));
      // Issued between the two rules: the first accepts it, the second does not.
      const between = issuedAt(RULE_US + 1, extra);
      assert.equal(outcome(index, between, RULE_EXPIRES_MS + 9_999), kind);
      assert.equal(outcome(index, between, RULE_EXPIRES_MS + 10_000), null);
      assert.equal(outcome(index, issuedAt(later, extra), NOW_MS), null);
    });

    test(`an earlier ${kind} rule arriving second neither narrows the not-before nor shortens the expiry`, () => {
      const extra = kind === 'claim' ? { role: 'admin' } : {};
      const index = indexWith(ruleOfKind(kind), ruleOfKind(kind, NOW_MS + 1, RULE_US - 10_000_000));
      assert.equal(outcome(index, issuedAt(RULE_US - 1, extra), RULE_EXPIRES_MS - 1), kind);
    });
  }

  for (const kind of ['token', 'session', 'family'] as const) {
    test(`a repeated ${kind} rule keeps the later expiry`, () => {
      const index = indexWith(ruleOfKind(kind, RULE_EXPIRES_MS + 5000), ruleOfKind(kind, RULE_EXPIRES_MS));
      assert.equal(outcome(index, tokenFacts(payload()), RULE_EXPIRES_MS + 4999), kind);
      assert.equal(outcome(index, tokenFacts(payload()), RULE_EXPIRES_MS + 5000), null);
    });
  }
});

describe('RevocationIndex: expiry and pruning', () => {
  for (const kind of REVOCATION_KINDS) {
    test(`an expired ${kind} rule stops rejecting before it is pruned`, () => {
      const token = issuedAt(RULE_US - 1, { role: 'admin' });
      const index = indexWith(ruleOfKind(kind, NOW_MS + 1000));
      assert.equal(outcome(index, token, NOW_MS + 999), kind);
      assert.equal(outcome(index, token, NOW_MS + 1000), null, 'expiry instant is exclusive');
      assert.equal(outcome(index, token, NOW_MS + 5000), null);
      assert.equal(index.size, 1, 'nothing was pruned');
    });

    test(`prune drops a ${kind} rule at its expiry and not before`, () => {
      const index = indexWith(ruleOfKind(kind, NOW_MS + 1000));
      assert.equal(index.prune(NOW_MS + 999), 0);
      assert.equal(index.size, 1);
      assert.equal(index.prune(NOW_MS + 1000), 1);
      assert.equal(index.size, 0);
      assert.equal(index.prune(NOW_MS + 1000), 0, 'a second prune finds nothing');
    });
  }

  test('prune counts every dropped entry across all kinds and keeps the live ones', () => {
    const index = new RevocationIndex();
    for (const kind of REVOCATION_KINDS) index.add(ruleOfKind(kind, NOW_MS + 1000));
    index.add({ kind: 'token', jti: 'live', expiresAtMs: NOW_MS + 2000 });
    index.add({ kind: 'claim', claim: 'roles', value: 'x', notBeforeUs: RULE_US, expiresAtMs: NOW_MS + 500 });
    index.add({
      kind: 'claim',
      claim: 'roles',
      value: 'y',
      notBeforeUs: RULE_US,
      expiresAtMs: NOW_MS + 2000,
    });
    assert.equal(index.size, REVOCATION_KINDS.length + 3);
    assert.equal(index.prune(NOW_MS + 1000), REVOCATION_KINDS.length + 1);
    assert.equal(index.size, 2);
    assert.equal(outcome(index, tokenFacts(payload({ jti: 'live' })), NOW_MS + 1000), 'token');
    assert.equal(outcome(index, issuedAt(RULE_US - 1, { roles: ['y'] }), NOW_MS + 1000), 'claim');
  });

  test('the active set stays bounded: after pruning only unexpired rules remain', () => {
    const index = new RevocationIndex();
    // One revocation per second over ten minutes, each living one minute.
    for (let i = 0; i < 600; i++) {
      index.add({ kind: 'token', jti: `jti-${i}`, expiresAtMs: NOW_MS + i * 1000 + 60_000 });
      index.prune(NOW_MS + i * 1000);
      assert.ok(index.size <= 61, `size ${index.size} at step ${i}`);
    }
    assert.equal(index.size, 60);
  });
});

describe('RevocationIndex: applying the log', () => {
  const entry = (cursor: number, jti: string): LogEntry => ({
    cursor,
    rule: { kind: 'token', jti, expiresAtMs: RULE_EXPIRES_MS },
  });
  const revoked = (index: RevocationIndex, jti: string) =>
    index.check(tokenFacts(payload({ jti })), NOW_MS).revoked;

  test('a new index is at cursor 0 and empty', () => {
    const index = new RevocationIndex();
    assert.equal(index.cursor, 0);
    assert.equal(index.size, 0);
  });

  test('apply adds entries in order and advances the cursor to the last one', () => {
    const index = new RevocationIndex();
    index.apply([entry(1, 'a'), entry(2, 'b'), entry(5, 'c')]);
    assert.equal(index.cursor, 5);
    assert.deepEqual(
      ['a', 'b', 'c'].map((j) => revoked(index, j)),
      [true, true, true],
    );
  });

  test('apply ignores entries at or below the cursor', () => {
    const index = new RevocationIndex();
    index.apply([entry(1, 'a'), entry(2, 'b')]);
    index.apply([entry(2, 'replayed'), entry(1, 'older'), entry(3, 'c')]);
    assert.equal(index.cursor, 3);
    assert.equal(revoked(index, 'replayed'), false);
    assert.equal(revoked(index, 'older'), false);
    assert.equal(revoked(index, 'c'), true);
    assert.equal(index.size, 3);
  });

  test('an out-of-order entry inside one batch is ignored', () => {
    const index = new RevocationIndex();
    index.apply([entry(4, 'a'), entry(3, 'b')]);
    assert.equal(index.cursor, 4);
    assert.equal(revoked(index, 'b'), false);
  });

  test('add does not move the cursor', () => {
    const index = new RevocationIndex();
    index.apply([entry(7, 'a')]);
    index.add({ kind: 'token', jti: 'b', expiresAtMs: RULE_EXPIRES_MS });
    assert.equal(index.cursor, 7);
    assert.equal(revoked(index, 'b'), true);
  });

  test('reset replaces every rule with the snapshot and takes its cursor', () => {
    const index = new RevocationIndex();
    index.apply([entry(1, 'a'), entry(2, 'b')]);
    for (const kind of REVOCATION_KINDS) index.add(ruleOfKind(kind));
    index.reset([{ kind: 'token', jti: 'snap', expiresAtMs: RULE_EXPIRES_MS }], 10);
    assert.equal(index.cursor, 10);
    assert.equal(index.size, 1);
    assert.equal(revoked(index, 'a'), false);
    assert.equal(revoked(index, 'snap'), true);
    assert.equal(outcome(index, issuedAt(RULE_US - 1, { role: 'admin', jti: 'x' })), null);
  });

  test('after reset, entries up to the snapshot cursor are ignored and later ones applied', () => {
    const index = new RevocationIndex();
    index.reset([], 10);
    index.apply([entry(9, 'old'), entry(10, 'same'), entry(11, 'new')]);
    assert.equal(revoked(index, 'old'), false);
    assert.equal(revoked(index, 'same'), false);
    assert.equal(revoked(index, 'new'), true);
    assert.equal(index.cursor, 11);
  });

  test('reset may move the cursor backwards (a snapshot from a reloaded log)', () => {
    const index = new RevocationIndex();
    index.apply([entry(50, 'a')]);
    index.reset([], 20);
    assert.equal(index.cursor, 20);
    index.apply([entry(21, 'b')]);
    assert.equal(revoked(index, 'b'), true);
  });
});

describe('RevocationIndex: allowlist mode', () => {
  const allow = (jti: string, expiresAtMs = RULE_EXPIRES_MS): Rule => ({ kind: 'allow', jti, expiresAtMs });
  const token = (jti: string) => tokenFacts(payload({ jti }));

  test('RULE_KINDS carries allow; REVOCATION_KINDS is every other kind', () => {
    assert.ok(RULE_KINDS.includes('allow'));
    assert.deepEqual(
      REVOCATION_KINDS,
      RULE_KINDS.filter((kind) => kind !== 'allow'),
    );
  });

  test('a token with a live allow entry is accepted; any other is rejected by the allowlist', () => {
    const index = new RevocationIndex({ allowlist: true });
    assert.equal(index.allowlist, true);
    index.apply([{ cursor: 1, rule: allow('jti-1') }]);
    assert.equal(index.check(token('jti-1'), NOW_MS).revoked, false);
    assert.equal(outcome(index, token('never-issued')), 'allowlist');
    assert.equal(outcome(index, tokenFacts(payload({ jti: undefined }))), 'allowlist', 'no jti, not allowed');
    assert.equal(index.size, 1);
  });

  test('decisions are shared frozen values', () => {
    const index = new RevocationIndex({ allowlist: true });
    const first = index.check(token('x'), NOW_MS);
    assert.equal(index.check(token('y'), NOW_MS), first);
    assert.ok(Object.isFrozen(first));
    index.add(allow('x'));
    const accepted = index.check(token('x'), NOW_MS);
    assert.ok(Object.isFrozen(accepted));
    assert.equal(accepted, indexWith().check(token('x'), NOW_MS));
  });

  test('revocation rules still apply to an allowed token', () => {
    const index = new RevocationIndex({ allowlist: true });
    index.add(allow('jti-1'));
    for (const kind of REVOCATION_KINDS) {
      const rule = ruleOfKind(kind);
      const probe = new RevocationIndex({ allowlist: true });
      probe.reset([allow('jti-1'), rule], 1);
      assert.equal(outcome(probe, issuedAt(RULE_US - 1, { role: 'admin' })), kind);
    }
    index.apply([{ cursor: 1, rule: { kind: 'token', jti: 'jti-1', expiresAtMs: RULE_EXPIRES_MS } }]);
    assert.equal(outcome(index, token('jti-1')), 'token');
  });

  test('an allow entry stops allowing at its expiry and is pruned then, not before', () => {
    const index = new RevocationIndex({ allowlist: true });
    index.add(allow('jti-1', NOW_MS + 1000));
    index.add(allow('jti-1', NOW_MS + 500));
    assert.equal(index.size, 1, 'repeated allow entries merge, keeping the later expiry');
    assert.equal(outcome(index, token('jti-1'), NOW_MS + 999), null);
    assert.equal(outcome(index, token('jti-1'), NOW_MS + 1000), 'allowlist');
    assert.equal(index.prune(NOW_MS + 999), 0);
    assert.equal(index.size, 1);
    assert.equal(index.prune(NOW_MS + 1000), 1);
    assert.equal(index.size, 0);
  });

  test('reset replaces the allowed set with the snapshot', () => {
    const index = new RevocationIndex({ allowlist: true });
    index.add(allow('old'));
    index.reset([allow('snap')], 5);
    assert.equal(outcome(index, token('old')), 'allowlist');
    assert.equal(outcome(index, token('snap')), null);
    assert.equal(index.size, 1);
  });

  test('the default mode ignores allow entries entirely: no memory, no effect on the check', () => {
    const index = new RevocationIndex();
    assert.equal(index.allowlist, false);
    index.apply([
      { cursor: 1, rule: allow('jti-1') },
      { cursor: 2, rule: allow('jti-2') },
    ]);
    index.reset([allow('jti-3')], 3);
    index.add(allow('jti-4'));
    assert.equal(index.size, 0);
    assert.equal(index.cursor, 3, 'allow entries still move the cursor');
    assert.equal(outcome(index, token('never-issued')), null);
    assert.equal(index.prune(RULE_EXPIRES_MS + 1), 0);
  });
});
