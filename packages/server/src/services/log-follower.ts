import type { LogEntry, RevocationIndex } from '@revokd/guard';
import type { Store } from '../store/port.ts';

const PAGE = 10_000;

/**
 * Keeps a {@link RevocationIndex} equal to the store's log. Entries committed by this process arrive by push
 * (in cursor order, right after their commit); entries committed by another process (the CLI, another node)
 * are found by reading the log from the index's cursor, on a timer and whenever a push does not continue the
 * cursor. So the index never skips an entry, whoever wrote it.
 */
export class LogFollower {
  readonly #store: Store;
  readonly #index: RevocationIndex;
  readonly #onApplied: ((entries: readonly LogEntry[]) => void) | undefined;
  #catchUp: Promise<void> | undefined;
  #again = false;

  /** `onApplied` receives the entries each apply added to the index, in cursor order, right after the apply. */
  constructor(store: Store, index: RevocationIndex, onApplied?: (entries: readonly LogEntry[]) => void) {
    this.#store = store;
    this.#index = index;
    this.#onApplied = onApplied;
  }

  /** Receives entries this process has just committed. */
  push(entries: readonly LogEntry[]): void {
    if (this.#catchUp === undefined && isContinuation(this.#index.cursor, entries)) {
      this.#apply(entries);
    } else {
      void this.catchUp();
    }
  }

  /** Reads and applies every entry after the index's cursor. Concurrent calls share one read loop. */
  catchUp(): Promise<void> {
    if (this.#catchUp) {
      this.#again = true;
      return this.#catchUp;
    }
    this.#catchUp = (async () => {
      try {
        do {
          this.#again = false;
          for (;;) {
            const page = await this.#store.readLog(this.#index.cursor, PAGE);
            this.#apply(page);
            if (page.length < PAGE) break;
          }
        } while (this.#again);
      } finally {
        this.#catchUp = undefined;
      }
    })();
    return this.#catchUp;
  }

  #apply(entries: readonly LogEntry[]): void {
    const before = this.#index.cursor;
    this.#index.apply(entries);
    if (this.#onApplied === undefined || this.#index.cursor === before) return;
    this.#onApplied(entries.filter((entry) => entry.cursor > before));
  }

  /** Resolves once the index reflects the log up to `cursor` (or no further entries can be read). */
  async waitFor(cursor: number): Promise<void> {
    while (this.#index.cursor < cursor) {
      const before = this.#index.cursor;
      await this.catchUp();
      // Entries up to `cursor` may have been pruned already; then there is nothing more to wait for.
      if (this.#index.cursor === before) return;
    }
  }
}

function isContinuation(cursor: number, entries: readonly LogEntry[]): boolean {
  let expected = cursor + 1;
  for (const entry of entries) {
    if (entry.cursor !== expected) return false;
    expected += 1;
  }
  return true;
}
