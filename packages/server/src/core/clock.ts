/**
 * The only source of time for the core. Services take a Clock so tests can drive time.
 * `nowMs` is the wall clock. `nowUs` is a hybrid logical clock: strictly increasing within a process (two instants
 * taken one after the other never compare equal, which orders a not-before rule and a token issued right after it,
 * even within one millisecond), and never at or below an instant {@link Clock.observeUs observed} from another
 * node, so a node that has applied another node's not-before rule issues its next tokens after it.
 */
export interface Clock {
  nowMs(): number;
  nowUs(): number;
  /** Moves `nowUs` past `us` if it is not already (a not-before instant written by another node). */
  observeUs(us: number): void;
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

  observeUs(us: number): void {
    this.#lastUs = Math.max(this.#lastUs, us);
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

  observeUs(us: number): void {
    this.#lastUs = Math.max(this.#lastUs, us);
  }

  advance(ms: number): void {
    this.#ms += ms;
  }
}
