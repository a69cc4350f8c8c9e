import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Runtime } from '../runtime.ts';
import type { GuardOverview } from '../services/guard-directory.ts';

/** Prometheus metrics of one server process, served at `/metrics`. */
export class Metrics {
  readonly registry = new Registry();
  readonly #requests: Histogram<'route' | 'method' | 'status'>;
  readonly tokensIssued: Counter<'grant'>;

  constructor(runtime: Runtime) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'revokd_process_' });
    this.#requests = new Histogram({
      name: 'revokd_http_request_duration_seconds',
      help: 'HTTP request duration by route, method and status.',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.tokensIssued = new Counter({
      name: 'revokd_tokens_issued_total',
      help: 'Access tokens issued, by grant type.',
      labelNames: ['grant'],
      registers,
    });
    new Gauge({
      name: 'revokd_revocation_index_entries',
      help: 'Active entries in this process’s revocation index.',
      registers,
      collect() {
        this.set(runtime.revocation.index.size);
      },
    });
    const timeToEnforce = new Histogram({
      name: 'revokd_time_to_enforce_seconds',
      help: 'Time from a rule’s commit to the receipt of a guard that covers it, once per (rule, guard), by rule kind.',
      labelNames: ['kind'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    runtime.guards.onEnforced((kind, delayMs) => timeToEnforce.observe({ kind }, delayMs / 1000));
    // One look at the guards per scrape, shared by the three gauges (in cluster mode, one Redis call).
    let scrape: Promise<GuardOverview> | undefined;
    const guards = () =>
      (scrape ??= runtime.guardDirectory.overview().finally(() => {
        scrape = undefined;
      }));
    new Gauge({
      name: 'revokd_guards_connected',
      help: 'Guards connected: with a revocation stream open on this process, or, in cluster mode, reporting to any node.',
      registers,
      async collect() {
        this.set((await guards()).connected);
      },
    });
    new Gauge({
      name: 'revokd_guards_max_lag_entries',
      help: 'Largest gap between this process’s log cursor and a connected guard’s acknowledged cursor.',
      registers,
      async collect() {
        this.set((await guards()).maxLag.entries);
      },
    });
    new Gauge({
      name: 'revokd_guards_max_lag_seconds',
      help: 'Largest age of a log entry that a connected guard has not acknowledged.',
      registers,
      async collect() {
        this.set((await guards()).maxLag.ms / 1000);
      },
    });
    new Counter({
      name: 'revokd_audit_events_lost_total',
      help: 'Audit events recorded after the answer (issuance, introspection) that could not be written.',
      registers,
      collect() {
        this.reset();
        this.inc(runtime.audit.stats.lost);
      },
    });
    new Gauge({
      name: 'revokd_audit_events_pending',
      help: 'Audit events recorded after the answer and not yet committed.',
      registers,
      collect() {
        this.set(runtime.audit.stats.pending);
      },
    });
    new Gauge({
      name: 'revokd_revocation_log_cursor',
      help: 'Cursor of the last log entry this process has applied.',
      registers,
      collect() {
        this.set(runtime.revocation.index.cursor);
      },
    });
    const relay = runtime.redisFeed?.relay;
    if (relay) {
      // Counters read from the relay's own tallies at scrape time (prom-client counters cannot be set, gauges can).
      new Gauge({
        name: 'revokd_redis_relay_entries_added',
        help: 'Log entries this node added to the Redis feed stream (entries another node added first are not counted).',
        registers,
        collect() {
          this.set(relay.stats.entriesAdded);
        },
      });
      new Gauge({
        name: 'revokd_redis_relay_errors',
        help: 'Failed Redis commands (or log reads) of this node’s relay since it started.',
        registers,
        collect() {
          this.set(relay.stats.errors);
        },
      });
      new Gauge({
        name: 'revokd_redis_relay_failing',
        help: '1 while the last attempt to publish to Redis failed (the relay catches up from the log once Redis answers).',
        registers,
        collect() {
          this.set(relay.stats.failing ? 1 : 0);
        },
      });
      new Gauge({
        name: 'revokd_redis_relay_foreign_stream',
        help: '1 while the Redis stream reaches beyond this deployment’s log (a restored or new database, or another deployment on the key): delete the key.',
        registers,
        collect() {
          this.set(relay.stats.foreignStream ? 1 : 0);
        },
      });
    }
  }

  observeRequest(route: string, method: string, status: number, elapsedMs: number): void {
    this.#requests.observe({ route, method, status: String(status) }, elapsedMs / 1000);
  }
}
