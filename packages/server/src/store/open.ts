import type { LogEntry } from '@revokd/guard';
import type { Config } from '../config/schema.ts';
import type { Store } from './port.ts';
import { PostgresStore } from './postgres/postgres-store.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';

export interface StoreHooks {
  /** Log entries this process has just committed, in cursor order (the in-process feed). */
  readonly onLogAppended: (entries: readonly LogEntry[]) => void;
  /** Another process (a node, the CLI) committed log entries: read the log from the index's cursor. */
  readonly onRemoteCommit: () => void;
}

/** Opens the store the configuration selects. */
export async function openStore(config: Config, hooks: StoreHooks): Promise<Store> {
  const { store } = config;
  switch (store.kind) {
    case 'sqlite':
      // One process writes; the CLI's commits are found by the log follower's poll.
      return SqliteStore.open({ path: store.path, onLogAppended: hooks.onLogAppended });
    case 'postgres':
      // Several nodes write; each hears the others' commits through LISTEN/NOTIFY.
      return PostgresStore.open({ url: store.url, poolSize: store.poolSize, ...hooks });
  }
}
