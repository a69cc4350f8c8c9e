import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeSseEvent, type SseEvent, SseLimitError, SseParser } from '../src/feed/sse.ts';

/** Parses a whole stream, fed in the given chunks; returns the events and retry values. */
function parse(chunks: readonly string[], options: { maxEventChars?: number; end?: boolean } = {}) {
  const events: SseEvent[] = [];
  const retries: number[] = [];
  const parser = new SseParser({
    onEvent: (event) => events.push(event),
    onRetry: (ms) => retries.push(ms),
    ...(options.maxEventChars !== undefined ? { maxEventChars: options.maxEventChars } : {}),
  });
  for (const chunk of chunks) parser.push(chunk);
  if (options.end !== false) parser.end();
  return { events, retries, parser };
}

const whole = (text: string) => parse([text]).events;
const ev = (data: string, type = 'message', lastEventId = ''): SseEvent => ({ type, data, lastEventId });

/** Every way of cutting `text` into two chunks, and one character at a time. */
function splits(text: string): string[][] {
  const out: string[][] = [[...text]];
  for (let i = 0; i <= text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  return out;
}

describe('SseParser (WHATWG HTML §9.2.6)', () => {
  test('a single data line', () => {
    assert.deepEqual(whole('data: hello\n\n'), [ev('hello')]);
  });

  test('the standard example: data lines joined with LF', () => {
    assert.deepEqual(whole('data: YHOO\ndata: +2\ndata: 10\n\n'), [ev('YHOO\n+2\n10')]);
  });

  test('one leading space is stripped from a value, no more', () => {
    assert.deepEqual(whole('data:test\n\ndata: test\n\ndata:  test\n\n'), [
      ev('test'),
      ev('test'),
      ev(' test'),
    ]);
  });

  test('a field name without colon has an empty value; an event with empty data is still dispatched', () => {
    assert.deepEqual(whole('data\n\n'), [ev('')]);
    assert.deepEqual(whole('data\ndata\n\n'), [ev('\n')]);
  });

  test('an event with no data field is not dispatched, and its type does not leak', () => {
    assert.deepEqual(whole('event: foo\n\ndata: x\n\n'), [ev('x')]);
  });

  test('event sets the type for one event only; an empty event field means message', () => {
    assert.deepEqual(whole('event: add\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n'), [
      ev('1', 'add'),
      ev('2'),
      ev('3'),
    ]);
  });

  test('id persists across events, an empty id resets it, an id with NUL is ignored', () => {
    assert.deepEqual(whole('id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 2\u0000\ndata: d\n\n'), [
      ev('a', 'message', '1'),
      ev('b', 'message', '1'),
      ev('c', 'message', ''),
      ev('d', 'message', ''),
    ]);
  });

  test('an id on an event without data still sets the last event id', () => {
    const { events, parser } = parse(['id: 7\n\ndata: x\n\n']);
    assert.deepEqual(events, [ev('x', 'message', '7')]);
    assert.equal(parser.lastEventId, '7');
  });

  test('comments and unknown fields are ignored', () => {
    assert.deepEqual(whole(': heartbeat\nfoo: bar\ndata: x\n:another\n\n'), [ev('x')]);
  });

  test('field names are case-sensitive', () => {
    assert.deepEqual(whole('Data: x\n\nDATA: y\n\n'), []);
  });

  test('CRLF, CR and LF line ends, mixed', () => {
    assert.deepEqual(whole('data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n'), [
      ev('a'),
      ev('b'),
      ev('c'),
      ev('d'),
    ]);
  });

  test('the same events whatever the chunking (CR LF split across chunks included)', () => {
    const text = 'event: e\r\nid: 1\r\ndata: x\r\ndata: y\r\n\r\ndata: z\r\r: c\ndata: w\n\n';
    const expected = whole(text);
    assert.equal(expected.length, 3);
    for (const chunks of splits(text))
      assert.deepEqual(parse(chunks).events, expected, JSON.stringify(chunks));
  });

  test('a CR at the end of a chunk ends the line even if no LF follows', () => {
    assert.deepEqual(parse(['data: a\r', '\r', 'data: b\n\n']).events, [ev('a'), ev('b')]);
  });

  test('empty chunks change nothing', () => {
    assert.deepEqual(parse(['data: a\r', '', '\n', '', '\n']).events, [ev('a')]);
  });

  test('a leading byte order mark is skipped, a later one is not', () => {
    assert.deepEqual(whole('\uFEFFdata: a\n\n'), [ev('a')]);
    assert.deepEqual(parse(['\uFEFF', 'data: a\n\n']).events, [ev('a')]);
    assert.deepEqual(whole('data: a\n\n\uFEFFdata: b\n\n'), [ev('a')]);
  });

  test('an unterminated event at the end of the stream is discarded', () => {
    assert.deepEqual(whole('data: a\n\ndata: b\n'), [ev('a')]);
    assert.deepEqual(whole('data: a\n\ndata: b'), [ev('a')]);
  });

  test('retry with digits only is reported; anything else is ignored', () => {
    assert.deepEqual(parse(['retry: 1500\nretry: 1.5\nretry: x\nretry:\ndata: a\n\n']).retries, [1500]);
  });

  test('multi-byte characters pass through', () => {
    assert.deepEqual(whole('data: héllo ✓ 𝄞\n\n'), [ev('héllo ✓ 𝄞')]);
  });

  test('an over-long line or event throws SseLimitError', () => {
    assert.throws(
      () => parse([`data: ${'x'.repeat(200)}`], { maxEventChars: 100, end: false }),
      SseLimitError,
    );
    assert.throws(
      () => parse([`data: ${'x'.repeat(60)}\ndata: ${'x'.repeat(60)}\n`], { maxEventChars: 100, end: false }),
      SseLimitError,
    );
    assert.deepEqual(parse([`data: ${'x'.repeat(90)}\n\n`], { maxEventChars: 100 }).events.length, 1);
  });

  test('a line split over many chunks is reassembled', () => {
    const data = 'y'.repeat(5000);
    const text = `data: ${data}\n\n`;
    const chunks: string[] = [];
    for (let i = 0; i < text.length; i += 7) chunks.push(text.slice(i, i + 7));
    assert.deepEqual(parse(chunks).events, [ev(data)]);
  });
});

describe('encodeSseEvent', () => {
  test('round-trips through the parser, multi-line data included', () => {
    const text =
      encodeSseEvent({ type: 'entries', id: '42', data: '{"a":1}' }) +
      encodeSseEvent({ data: 'line 1\nline 2\r\nline 3' }) +
      encodeSseEvent({ type: 'heartbeat', data: '' });
    assert.deepEqual(whole(text), [
      ev('{"a":1}', 'entries', '42'),
      ev('line 1\nline 2\nline 3', 'message', '42'),
      ev('', 'heartbeat', '42'),
    ]);
  });

  test('refuses a type or id that would break the framing', () => {
    assert.throws(() => encodeSseEvent({ type: 'a\nb', data: 'x' }), TypeError);
    assert.throws(() => encodeSseEvent({ id: '1\r', data: 'x' }), TypeError);
  });
});
