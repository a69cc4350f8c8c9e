import type { Config } from './config/schema.ts';
import { type Clock, SystemClock } from './core/clock.ts';
import { Keyring } from './crypto/keyring.ts';
import { type RedisFeed, startRedisFeed } from './feed/redis-feed.ts';
import { AdminService } from './services/admin.ts';
import { AuditTrail } from './services/audit-trail.ts';
import { BackchannelLogoutDispatcher } from './services/backchannel-logout.ts';
import { ClientService } from './services/clients.ts';
import { GuardRegistry } from './services/guard-registry.ts';
import { IntrospectionService } from './services/introspection.ts';
import { RevocationService } from './services/revocation.ts';
import { TokenService } from './services/tokens.ts';
import { openStore } from './store/open.ts';
import type { Store } from './store/port.ts';

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
  /** Audit events written after the answer (issuance, introspection). */
  readonly audit: AuditTrail;
  /** Delivers back-channel logout tokens from the outbox; undefined when not following (the CLI). */
  readonly backchannelLogout: BackchannelLogoutDispatcher | undefined;
  /** Guards connected to this process's revocation stream, and their receipts. */
  readonly guards: GuardRegistry;
  /** The Redis fan-out, when `feed.redis` is configured (the server only, not the CLI). */
  readonly redisFeed: RedisFeed | undefined;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  readonly clock?: Clock;
  /** `true` (the server) follows the log and prunes on timers; the CLI runs one command and leaves. */
  readonly follow?: boolean;
  readonly actor?: string;
}

/** Keys are a handful of rows: re-reading them every second is cheap and bounds how long a withdrawn key signs. */
const KEY_RELOAD_INTERVAL_MS = 1_000;

export async function createRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const clock = options.clock ?? new SystemClock();
  const follow = options.follow ?? true;
  // The store announces committed log entries to the revocation service: the embedded in-process feed.
  let revocation: RevocationService | undefined;
  const store = await openStore(config, {
    onLogAppended: (entries) => revocation?.onAppended(entries),
    onRemoteCommit: () => void revocation?.catchUp().catch(() => {}),
  });
  const retiredPublishMs = (config.tokens.maxAccessTokenTtlSeconds + config.tokens.clockSkewSeconds) * 1000;
  const keyring = new Keyring(store, clock, { algorithm: config.signing.algorithm, retiredPublishMs });
  revocation = new RevocationService({ config, store, clock, keyring });
  const clients = new ClientService(store);
  const audit = new AuditTrail(store);
  const tokens = new TokenService({ config, store, keyring, clock, revocation, audit });
  const introspection = new IntrospectionService({ config, store, keyring, clock, revocation, audit });
  const admin = new AdminService({ store, clock, keyring, revocation, audit });
  const guards = new GuardRegistry({ clock, revocation });
  const backchannelLogout = follow
    ? new BackchannelLogoutDispatcher({ config, store, keyring, clock })
    : undefined;
  const timers: NodeJS.Timeout[] = [];
  let redisFeed: RedisFeed | undefined;
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
      revocation.onApplied((entries) => {
        // Sessions ended by a revocation this process applies have their logout tokens queued: send them now.
        backchannelLogout?.poke();
        // A global rule is what a key compromise writes (after withdrawing the key): stop signing with it at once.
        if (entries.some((entry) => entry.rule.kind === 'global')) void keyring.reload().catch(() => {});
      });
      backchannelLogout?.start();
      const redis = config.feed.redis;
      if (redis) redisFeed = startRedisFeed(redis, { config, store, clock, revocation });
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
    audit,
    guards,
    redisFeed,
    backchannelLogout,
    async close() {
      guards.close();
      for (const timer of timers) clearInterval(timer);
      revocation.stop();
      await redisFeed?.close();
      await backchannelLogout?.stop();
      await audit.close();
      await store.close();
    },
  };
}
