/**
 * Server-Sent Events: a parser of the `text/event-stream` format as the WHATWG HTML standard defines it
 * (§9.2.6 "Interpreting an event stream"), and the matching encoder.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */

export interface SseEvent {
  /** The `event` field, or `message` when absent. */
  readonly type: string;
  /** The `data` lines joined with `\n`. */
  readonly data: string;
  /** The last `id` seen on the stream so far (it persists across events, as the standard says). */
  readonly lastEventId: string;
}

export interface SseParserOptions {
  readonly onEvent: (event: SseEvent) => void;
  /** Called with a valid `retry` field (milliseconds). */
  readonly onRetry?: (ms: number) => void;
  /**
   * Most characters one event may hold (its pending line plus its data), so a stream that never ends a line
   * or an event cannot exhaust memory. Exceeding it throws {@link SseLimitError}. Default 16 Mi.
   */
  readonly maxEventChars?: number;
}

export class SseLimitError extends Error {
  override readonly name = 'SseLimitError';
}

/**
 * Incremental parser: feed it decoded text as it arrives ({@link SseParser.push}); it calls `onEvent` for each
 * complete event. Lines end with CRLF, LF or CR, which may be split across chunks. A leading byte order mark is
 * skipped. Comments (`:` lines) and unknown fields are ignored; an event without data is not dispatched; an
 * unterminated event at the end of the stream is discarded.
 */
export class SseParser {
  readonly #onEvent: (event: SseEvent) => void;
  readonly #onRetry: ((ms: number) => void) | undefined;
  readonly #maxEventChars: number;
  #started = false;
  /** The previous chunk ended with CR: a LF starting the next chunk belongs to the same line end. */
  #afterCR = false;
  #line = '';
  #data = '';
  #hasData = false;
  #type = '';
  #lastEventId = '';
  #pendingId: string | undefined;

  constructor(options: SseParserOptions) {
    this.#onEvent = options.onEvent;
    this.#onRetry = options.onRetry;
    this.#maxEventChars = options.maxEventChars ?? 16 * 1024 * 1024;
  }

  /** The last event id seen (persists across events). */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  push(chunk: string): void {
    const length = chunk.length;
    if (length === 0) return;
    let start = 0;
    if (!this.#started) {
      this.#started = true;
      if (chunk.charCodeAt(0) === 0xfeff) start = 1;
    }
    if (this.#afterCR) {
      this.#afterCR = false;
      if (chunk.charCodeAt(start) === 0x0a) start += 1;
    }
    while (start < length) {
      const end = nextLineEnd(chunk, start);
      if (end === -1) {
        this.#line += chunk.slice(start);
        this.#checkSize();
        return;
      }
      const line = this.#line.length > 0 ? this.#line + chunk.slice(start, end) : chunk.slice(start, end);
      this.#line = '';
      start = end + 1;
      if (chunk.charCodeAt(end) === 0x0d) {
        if (start === length) this.#afterCR = true;
        else if (chunk.charCodeAt(start) === 0x0a) start += 1;
      }
      this.#processLine(line);
    }
  }

  /** The stream ended: whatever event was not terminated by a blank line is discarded. */
  end(): void {
    this.#line = '';
    this.#data = '';
    this.#hasData = false;
    this.#type = '';
    this.#afterCR = false;
  }

  #processLine(line: string): void {
    if (line.length === 0) {
      this.#dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a) return; // ':' comment
    const colon = line.indexOf(':');
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.charCodeAt(colon + 1) === 0x20 ? line.slice(colon + 2) : line.slice(colon + 1);
    }
    switch (field) {
      case 'event':
        this.#type = value;
        return;
      case 'data':
        this.#data = this.#hasData ? `${this.#data}\n${value}` : value;
        this.#hasData = true;
        this.#checkSize();
        return;
      case 'id':
        if (!value.includes('\0')) this.#pendingId = value;
        return;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.#onRetry?.(Number(value));
        return;
      default:
        return;
    }
  }

  #dispatch(): void {
    // The standard sets the last event id when the field is seen; it only matters at dispatch time here.
    if (this.#pendingId !== undefined) {
      this.#lastEventId = this.#pendingId;
      this.#pendingId = undefined;
    }
    if (!this.#hasData) {
      this.#type = '';
      return;
    }
    const event: SseEvent = {
      type: this.#type.length > 0 ? this.#type : 'message',
      data: this.#data,
      lastEventId: this.#lastEventId,
    };
    this.#data = '';
    this.#hasData = false;
    this.#type = '';
    this.#onEvent(event);
  }

  #checkSize(): void {
    if (this.#line.length + this.#data.length > this.#maxEventChars) {
      this.#line = '';
      this.#data = '';
      throw new SseLimitError(`an event exceeded ${this.#maxEventChars} characters`);
    }
  }
}

function nextLineEnd(text: string, from: number): number {
  const lf = text.indexOf('\n', from);
  const cr = text.indexOf('\r', from);
  if (cr === -1) return lf;
  if (lf === -1) return cr;
  return Math.min(cr, lf);
}

/**
 * Encodes one event. `data` may hold newlines (each line becomes a `data:` field); `event` and `id` must not
 * hold CR or LF.
 */
export function encodeSseEvent(event: { type?: string; data: string; id?: string }): string {
  if (/[\r\n]/.test(event.type ?? '') || /[\r\n\0]/.test(event.id ?? '')) {
    throw new TypeError('SSE event type and id must not contain CR, LF or NUL');
  }
  let text = '';
  if (event.type !== undefined) text += `event: ${event.type}\n`;
  if (event.id !== undefined) text += `id: ${event.id}\n`;
  for (const line of event.data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
  return `${text}\n`;
}
