/** The Redis stream record format: ids carry cursors, records validate like the SSE frames, and nothing else passes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRedisFeedRecord, redisCompanionKey, redisResumeId } from '../src/feed/redis-wire.ts';

const entry = (cursor: number) => ({
  cursor,
  rule: { kind: 'token', jti: `jti-${cursor}`, expiresAtMs: 1e12 },
});
const entries = (...cursors: number[]) => JSON.stringify({ entries: cursors.map(entry) });
const heartbeat = (cursor: number) => JSON.stringify({ cursor, serverTimeMs: 1234 });

test('an entries record: id <last>-0, prev, the SSE entries frame JSON', () => {
  assert.deepEqual(parseRedisFeedRecord('7-0', ['event', 'entries', 'data', entries(5, 7), 'prev', '4']), {
    kind: 'entries',
    prev: 4,
    entries: [entry(5), entry(7)],
  });
});

test('a heartbeat record: id <head>-<n ≥ 1>, the SSE heartbeat frame JSON', () => {
  assert.deepEqual(parseRedisFeedRecord('7-3', ['event', 'heartbeat', 'data', heartbeat(7)]), {
    kind: 'heartbeat',
    heartbeat: { cursor: 7, serverTimeMs: 1234 },
  });
});

test('unknown events are ignored; unknown fields too', () => {
  assert.deepEqual(parseRedisFeedRecord('7-1', ['event', 'future', 'data', '{}']), { kind: 'other' });
  assert.equal(
    parseRedisFeedRecord('7-0', ['event', 'entries', 'data', entries(7), 'prev', '6', 'x', 'y'])?.kind,
    'entries',
  );
});

test('invalid records, one row per flaw', () => {
  const rows: Array<[string, unknown, unknown]> = [
    ['entries id with a sequence', '7-1', ['event', 'entries', 'data', entries(7), 'prev', '6']],
    ['last cursor is not the id', '8-0', ['event', 'entries', 'data', entries(7), 'prev', '6']],
    ['an entry not after prev', '7-0', ['event', 'entries', 'data', entries(6, 7), 'prev', '6']],
    ['entries out of order', '7-0', ['event', 'entries', 'data', entries(7, 6), 'prev', '1']],
    ['no entries', '7-0', ['event', 'entries', 'data', entries(), 'prev', '6']],
    ['no prev', '7-0', ['event', 'entries', 'data', entries(7)]],
    ['prev not a cursor', '7-0', ['event', 'entries', 'data', entries(7), 'prev', '-1']],
    [
      'an invalid rule',
      '7-0',
      ['event', 'entries', 'data', '{"entries":[{"cursor":7,"rule":{}}]}', 'prev', '6'],
    ],
    ['heartbeat with sequence 0', '7-0', ['event', 'heartbeat', 'data', heartbeat(7)]],
    ['heartbeat cursor is not the id', '7-1', ['event', 'heartbeat', 'data', heartbeat(6)]],
    ['no data', '7-1', ['event', 'heartbeat']],
    ['no event', '7-1', ['data', heartbeat(7)]],
    ['odd field list', '7-1', ['event', 'heartbeat', 'data']],
    ['not JSON', '7-1', ['event', 'heartbeat', 'data', '{']],
    ['malformed id', '7', ['event', 'heartbeat', 'data', heartbeat(7)]],
    ['id beyond 2^53', '9007199254740993-1', ['event', 'heartbeat', 'data', heartbeat(7)]],
    ['fields not a list', '7-1', 'event heartbeat'],
  ];
  for (const [flaw, id, fields] of rows) assert.equal(parseRedisFeedRecord(id, fields), undefined, flaw);
});

test('resume id and companion keys', () => {
  assert.equal(redisResumeId(0), '0-0');
  assert.equal(redisResumeId(42), '42-0');
  assert.equal(redisCompanionKey('{revokd}:log', 'heartbeat'), '{revokd}:log:heartbeat');
  // Without a (non-empty) hash tag the whole key is hashed: the tag {key} lands in the same slot.
  assert.equal(redisCompanionKey('revokd-log', 'heartbeat'), '{revokd-log}:heartbeat');
  assert.equal(redisCompanionKey('{}log', 'heartbeat'), '{{}log}:heartbeat');
});
