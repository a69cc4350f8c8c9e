/**
 * Worker thread of {@link Checkpointer}: its own connection to the database file, running a PASSIVE checkpoint
 * (copy committed WAL frames into the database file, then sync it) each time it is asked, and answering with
 * SQLite's counts. PASSIVE never waits for readers or writers, so the store's connection is never blocked by it.
 */
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

export interface CheckpointResult {
  /** Frames in the WAL, or -1 when the checkpoint could not run (another was running: SQLITE_BUSY). */
  readonly log: number;
  /** Frames of it now in the database file. */
  readonly checkpointed: number;
}

const db = new DatabaseSync((workerData as { path: string }).path);
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');

parentPort!.on('message', (message: 'checkpoint' | 'close') => {
  if (message === 'close') {
    db.close();
    parentPort!.close();
    return;
  }
  let result: CheckpointResult;
  try {
    const row = checkpoint.get() as { busy: number; log: number; checkpointed: number };
    result = { log: Number(row.log), checkpointed: Number(row.checkpointed) };
  } catch {
    result = { log: -1, checkpointed: -1 };
  }
  parentPort!.postMessage(result);
});
