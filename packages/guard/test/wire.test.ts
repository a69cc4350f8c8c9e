import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SseParser } from '../src/feed/sse.ts';
import {
  encodeEntriesFrame,
  encodeHeartbeatFrame,
  encodeResetFrame,
  parseEntries,
  parseEntriesFrame,
  parseHeartbeatFrame,
  parseResetFrame,
  parseRule,
  parseSnapshot,
  STREAM_EVENTS,
} from '../src/feed/wire.ts';
import { type LogEntry, RULE_KINDS, type Rule } from '../src/model/rule.ts';

const rules: Rule[] = [
  { kind: 'token', jti: 'j', expiresAtMs: 1 },
  { kind: 'session', sid: 's', expiresAtMs: 1 },
  { kind: 'family', fid: 'f', expiresAtMs: 1 },
  { kind: 'subject', sub: 'u', notBeforeUs: 5, expiresAtMs: 1 },
  { kind: 'client', clientId: 'c', notBeforeUs: 5, expiresAtMs: 1 },
  { kind: 'global', notBeforeUs: 5, expiresAtMs: 1 },
  { kind: 'claim', claim: 'roles', value: 'admin', notBeforeUs: 5, expiresAtMs: 1 },
  { kind: 'allow', jti: 'j', expiresAtMs: 1 },
];

describe('wire formats', () => {
  test('every rule kind round-trips, and only known members are kept', () => {
    for (const rule of rules) {
      assert.deepEqual(parseRule(JSON.parse(JSON.stringify(rule))), rule);
      assert.deepEqual(parseRule({ ...rule, extra: 1, __proto__: { x: 1 } }), rule);
    }
  });

  test('allow entries (allowlist mode) are part of the wire: every kind is covered, entries parse', () => {
    assert.deepEqual(
      rules.map((rule) => rule.kind),
      [...RULE_KINDS],
    );
    assert.deepEqual(parseEntries([{ cursor: 1, rule: { kind: 'allow', jti: 'j', expiresAtMs: 9, x: 1 } }]), [
      { cursor: 1, rule: { kind: 'allow', jti: 'j', expiresAtMs: 9 } },
    ]);
    assert.equal(parseEntries([{ cursor: 1, rule: { kind: 'allow', jti: 'j' } }]), undefined);
  });

  test('invalid rules are refused, never dropped silently', () => {
    const invalid: unknown[] = [
      null,
      [],
      { kind: 'token', jti: 1, expiresAtMs: 1 },
      { kind: 'token', jti: 'j' },
      { kind: 'token', jti: 'j', expiresAtMs: '1' },
      { kind: 'subject', sub: 'u', expiresAtMs: 1 },
      { kind: 'claim', claim: 'roles', notBeforeUs: 1, expiresAtMs: 1 },
      { kind: 'allow', expiresAtMs: 1 },
      { kind: 'allow', jti: 7, expiresAtMs: 1 },
      { kind: 'allow', jti: 'j' },
      { kind: 'unknown-kind', expiresAtMs: 1 },
    ];
    for (const value of invalid) assert.equal(parseRule(value), undefined, JSON.stringify(value));
    assert.equal(
      parseSnapshot({ cursor: 3, rules: [rules[0], { kind: 'nope', expiresAtMs: 1 }] }),
      undefined,
    );
  });

  test('a snapshot needs a non-negative integer cursor', () => {
    assert.deepEqual(parseSnapshot({ cursor: 0, rules: [] }), { cursor: 0, rules: [] });
    for (const cursor of [-1, 1.5, '3', null, Number.MAX_SAFE_INTEGER + 2]) {
      assert.equal(parseSnapshot({ cursor, rules: [] }), undefined, String(cursor));
    }
  });

  test('entries must have strictly increasing positive cursors after the given one', () => {
    const entry = (cursor: number): LogEntry => ({ cursor, rule: rules[0]! });
    assert.deepEqual(parseEntries([entry(2), entry(5)]), [entry(2), entry(5)]);
    assert.equal(parseEntries([entry(5), entry(5)]), undefined);
    assert.equal(parseEntries([entry(5), entry(2)]), undefined);
    assert.equal(parseEntries([entry(0)]), undefined);
    assert.equal(parseEntries([entry(2)], 2), undefined);
    assert.equal(parseEntries({}), undefined);
  });

  test('stream frames encode as SSE events and parse back', () => {
    const entries: LogEntry[] = rules.map((rule, i) => ({ cursor: i + 1, rule }));
    const text =
      encodeEntriesFrame(entries) +
      encodeHeartbeatFrame({ cursor: 7, serverTimeMs: 1234 }) +
      encodeResetFrame({ reason: 'cursor_ahead', cursor: 3 });
    const seen: Array<{ type: string; data: string; id: string }> = [];
    const parser = new SseParser({
      onEvent: (e) => seen.push({ type: e.type, data: e.data, id: e.lastEventId }),
    });
    parser.push(text);
    assert.deepEqual(
      seen.map((e) => e.type),
      [STREAM_EVENTS.entries, STREAM_EVENTS.heartbeat, STREAM_EVENTS.reset],
    );
    assert.equal(seen[0]!.id, String(entries.length));
    assert.deepEqual(parseEntriesFrame(seen[0]!.data), entries);
    assert.deepEqual(parseHeartbeatFrame(seen[1]!.data), { cursor: 7, serverTimeMs: 1234 });
    assert.deepEqual(parseResetFrame(seen[2]!.data), { reason: 'cursor_ahead', cursor: 3 });
  });

  test('malformed frames parse to undefined', () => {
    assert.equal(parseEntriesFrame('not json'), undefined);
    assert.equal(parseEntriesFrame('{"entries":{}}'), undefined);
    assert.equal(parseHeartbeatFrame('{"cursor":1}'), undefined);
    assert.equal(parseHeartbeatFrame('{"cursor":-1,"serverTimeMs":1}'), undefined);
    assert.equal(parseResetFrame('{"cursor":1}'), undefined);
  });
});
