import type { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import type { CheckpointResult } from './checkpoint-worker.ts';

export interface CheckpointerOptions {
  /** The database file. */
  readonly path: string;
  /** The store's connection (the only writer of this process). */
  readonly db: DatabaseSync;
  /** Least time between two checkpoints of the worker, in milliseconds. Default 200. */
  readonly intervalMs?: number;
  /** WAL frames beyond which the store's own connection checkpoints (a few frames left to copy). Default 4000. */
  readonly maxWalFrames?: number;
}

/**
 * Keeps SQLite's checkpoints off the event loop. With the default auto-checkpoint, the connection that commits
 * copies the WAL into the database file every 1000 pages, inside COMMIT, and syncs both files: the event loop
 * stood still for up to ~10 ms each time here. The store's connection runs with `wal_autocheckpoint = 0`
 * instead, and a worker thread with a connection of its own checkpoints (PASSIVE: never waiting for the writer)
 * at most every `intervalMs` while commits come in.
 *
 * The WAL starts over from its beginning only when a write begins after a checkpoint that copied all of it; under
 * a steady stream of commits the worker never quite catches up, so the WAL would grow for as long as the load
 * lasts. Once it holds `maxWalFrames` frames, the next commit is followed by a checkpoint on the store's own
 * connection, which copies only what the worker has not (little) but lets the next write start the WAL over.
 * If the worker fails, the connection gets SQLite's auto-checkpoint back: slower, never wrong.
 *
 * The worker starts with the first checkpoint, `intervalMs` after the first commit: a process that writes little
 * and leaves (a CLI command) never starts one, and its connection checkpoints as SQLite does when it closes.
 */
export class Checkpointer {
  readonly #path: string;
  readonly #db: DatabaseSync;
  /** Started by the first checkpoint. */
  #worker: Worker | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #intervalMs: number;
  readonly #maxWalFrames: number;
  #running = false;
  /** When the last checkpoint started; before the first, when the first commit came. */
  #lastStartedMs: number | undefined;
  #pending = false;
  #walFrames = 0;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: CheckpointerOptions) {
    this.#path = options.path;
    this.#db = options.db;
    this.#db.exec('PRAGMA wal_autocheckpoint = 0');
    this.#intervalMs = options.intervalMs ?? 200;
    this.#maxWalFrames = options.maxWalFrames ?? 4000;
  }

  /** After each commit of the store's connection. */
  committed(): void {
    if (this.#closed) return;
    if (this.#walFrames >= this.#maxWalFrames) {
      this.#walFrames = 0;
      try {
        this.#db.exec('PRAGMA wal_checkpoint(PASSIVE)');
      } catch {
        // SQLITE_BUSY (the CLI checkpointing): the worker's next report brings this back.
      }
      return;
    }
    this.#pending = true;
    this.#schedule();
  }

  /** Waits for a checkpoint under way, then ends the worker and its connection. */
  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    const worker = this.#worker;
    if (worker) {
      worker.ref(); // the process waits for the worker's connection to close
      if (!this.#closed) worker.postMessage('close');
      else void worker.terminate();
    }
    this.#closed = true;
    await this.#exited;
  }

  #start(): Worker {
    const worker = new Worker(new URL('./checkpoint-worker.ts', import.meta.url), {
      workerData: { path: this.#path },
    });
    // An idle worker must not keep the process alive.
    worker.unref();
    worker.on('message', (result: CheckpointResult) => this.#done(result));
    worker.on('error', () => {
      if (this.#closed) return;
      this.#closed = true;
      try {
        this.#db.exec('PRAGMA wal_autocheckpoint = 1000');
      } catch {
        // The store's connection is closed already: nothing left to checkpoint.
      }
    });
    this.#exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    return worker;
  }

  #schedule(): void {
    if (this.#running || this.#timer || !this.#pending) return;
    this.#lastStartedMs ??= performance.now();
    const waitMs = this.#lastStartedMs + this.#intervalMs - performance.now();
    if (waitMs > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#schedule();
      }, waitMs);
      this.#timer.unref();
      return;
    }
    this.#pending = false;
    this.#running = true;
    this.#lastStartedMs = performance.now();
    this.#worker ??= this.#start();
    this.#worker.postMessage('checkpoint');
  }

  #done(result: CheckpointResult): void {
    this.#running = false;
    if (result.log >= 0) this.#walFrames = result.log;
    if (!this.#closed) this.#schedule();
  }
}
