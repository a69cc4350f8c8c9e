import type { LogEntry } from '@revokd/guard';
import type { Config } from './config/schema.ts';
import { type Clock, SystemClock } from './core/clock.ts';
import { Keyring } from './crypto/keyring.ts';
import { AdminService } from './services/admin.ts';
import { ClientService } from './services/clients.ts';
import { IntrospectionService } from './services/introspection.ts';
import { RevocationService } from './services/revocation.ts';
import { TokenService } from './services/tokens.ts';
import type { Store } from './store/port.ts';
import { SqliteStore } from './store/sqlite/sqlite-store.ts';

/** Every service of one revokd process, wired to the store chosen by configuration. */
export interface Runtime {
  readonly config: Config;
  readonly clock: Clock;
  readonly store: Store;
  readonly keyring: Keyring;
  readonly clients: ClientService;
  readonly revocation: RevocationService;
  readonly tokens: TokenService;
  readonly introspection: IntrospectionService;
  readonly admin: AdminService;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  readonly clock?: Clock;
  /** `true` (the server) follows the log and prunes on timers; the CLI runs one command and leaves. */
  readonly follow?: boolean;
  readonly actor?: string;
}

const KEY_RELOAD_INTERVAL_MS = 10_000;

export async function createRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const clock = options.clock ?? new SystemClock();
  const follow = options.follow ?? true;
  // The store announces committed log entries to the revocation service: the embedded in-process feed.
  let revocation: RevocationService | undefined;
  const store = openStore(config, (entries) => revocation?.onAppended(entries));
  const retiredPublishMs = (config.tokens.maxAccessTokenTtlSeconds + config.tokens.clockSkewSeconds) * 1000;
  const keyring = new Keyring(store, clock, { algorithm: config.signing.algorithm, retiredPublishMs });
  revocation = new RevocationService({ config, store, clock, keyring });
  const clients = new ClientService(store);
  const tokens = new TokenService({ config, store, keyring, clock, revocation });
  const introspection = new IntrospectionService({ config, store, keyring, clock, revocation });
  const admin = new AdminService({ store, clock, keyring, revocation });
  const timers: NodeJS.Timeout[] = [];
  try {
    await keyring.init(options.actor);
    await tokens.init();
    await clients.applyDeclared(config.clients);
    await revocation.start({ follow });
    if (follow) {
      // Keys rotated by the CLI or another node take effect here without a restart.
      const timer = setInterval(() => void keyring.reload().catch(() => {}), KEY_RELOAD_INTERVAL_MS);
      timer.unref();
      timers.push(timer);
    }
  } catch (error) {
    await store.close();
    throw error;
  }
  return {
    config,
    clock,
    store,
    keyring,
    clients,
    revocation,
    tokens,
    introspection,
    admin,
    async close() {
      for (const timer of timers) clearInterval(timer);
      revocation.stop();
      await store.close();
    },
  };
}

function openStore(config: Config, onLogAppended: (entries: readonly LogEntry[]) => void): Store {
  switch (config.store.kind) {
    case 'sqlite':
      return SqliteStore.open({ path: config.store.path, onLogAppended });
  }
}
