import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pino from 'pino';
import type { Config } from './config/schema.ts';
import { type Clock, SystemClock } from './core/clock.ts';
import { Keyring } from './crypto/keyring.ts';
import { type RedisFeed, startRedisFeed } from './feed/redis-feed.ts';
import { AdminService } from './services/admin.ts';
import { AuditTrail } from './services/audit-trail.ts';
import { BackchannelLogoutDispatcher } from './services/backchannel-logout.ts';
import { ClientService } from './services/clients.ts';
import { ClusterGuardDirectory, GUARD_TTL_MS } from './services/cluster-guard-directory.ts';
import { type GuardDirectory, LocalGuardDirectory } from './services/guard-directory.ts';
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
  /**
   * Guards connected to this process's revocation stream, and their receipts (in cluster mode, also the guards
   * that sent receipts here within the TTL): this process's view.
   */
  readonly guards: GuardRegistry;
  /**
   * Where guards are registered, listed and waited for: this process's guards (embedded), or every node's, shared
   * through Redis (cluster mode: `feed.redis`), falling back to `guards` while Redis fails.
   */
  readonly guardDirectory: GuardDirectory;
  /** This process's id among the nodes of a cluster (`<hostname>:<pid>:<random>`), as `/admin/guards` names it. */
  readonly nodeId: string;
  /** The Redis fan-out, when `feed.redis` is configured (the server only, not the CLI). */
  readonly redisFeed: RedisFeed | undefined;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  readonly clock?: Clock;
  /** `true` (the server) follows the log and prunes on timers; the CLI runs one command and leaves. */
  readonly follow?: boolean;
  readonly actor?: string;
  /** Cluster mode: a guard that has not reported for this long is no longer connected, in ms. Default 15000. */
  readonly guardTtlMs?: number;
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
  const nodeId = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const guardTtlMs = options.guardTtlMs ?? GUARD_TTL_MS;
  // In cluster mode receipts may come from guards with no stream here (they follow Redis, or another node).
  const clustered = follow && config.feed.redis !== undefined;
  const guards = new GuardRegistry({ clock, revocation, receiptTtlMs: clustered ? guardTtlMs : undefined });
  let guardDirectory: GuardDirectory = new LocalGuardDirectory(guards);
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
        // Only rules that end sessions queue any (not a token rule, nor an allowlist entry).
        if (entries.some((entry) => entry.rule.kind !== 'token' && entry.rule.kind !== 'allow')) {
          backchannelLogout?.poke();
        }
        // A global rule is what a key compromise writes (after withdrawing the key): stop signing with it at once.
        if (entries.some((entry) => entry.rule.kind === 'global')) void keyring.reload().catch(() => {});
      });
      backchannelLogout?.start();
      const redis = config.feed.redis;
      if (redis) {
        // Background components log on their own (they have no request): one logger, a child per component.
        const log = pino({ level: config.log.level });
        redisFeed = startRedisFeed(redis, {
          store,
          clock,
          revocation,
          logger: log.child({ component: 'redis-relay' }),
        });
        guardDirectory = new ClusterGuardDirectory({
          registry: guards,
          store: redisFeed.guards,
          node: nodeId,
          clock,
          ttlMs: guardTtlMs,
          logger: log.child({ component: 'guard-directory' }),
        });
      }
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
    guardDirectory,
    nodeId,
    redisFeed,
    backchannelLogout,
    async close() {
      await guardDirectory.close();
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
