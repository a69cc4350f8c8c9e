/**
 * The only source of time for the core. Services take a Clock so tests can drive time.
 * `nowUs` is strictly increasing within a process: two instants taken one after the other never compare equal,
 * which is what orders a not-before rule and a token issued right after it, even within one millisecond.
 */
export interface Clock {
  nowMs(): number;
  nowUs(): number;
}

/** Wall-clock time; `nowUs` counts up within a millisecond so successive calls stay distinct. */
export class SystemClock implements Clock {
  #lastUs = 0;

  nowMs(): number {
    return Date.now();
  }

  nowUs(): number {
    this.#lastUs = Math.max(Date.now() * 1000, this.#lastUs + 1);
    return this.#lastUs;
  }
}

/** A clock that only moves when told to; `nowUs` still increases strictly between calls. */
export class ManualClock implements Clock {
  #ms: number;
  #lastUs = 0;

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#ms = startMs;
  }

  nowMs(): number {
    return this.#ms;
  }

  nowUs(): number {
    this.#lastUs = Math.max(this.#ms * 1000, this.#lastUs + 1);
    return this.#lastUs;
  }

  advance(ms: number): void {
    this.#ms += ms;
  }
}
