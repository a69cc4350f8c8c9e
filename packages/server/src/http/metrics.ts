import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Runtime } from '../runtime.ts';

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
    new Gauge({
      name: 'revokd_guards_connected',
      help: 'Guards with a revocation stream open on this process.',
      registers,
      collect() {
        this.set(runtime.guards.size);
      },
    });
    new Gauge({
      name: 'revokd_guards_max_lag_entries',
      help: 'Largest gap between this process’s log cursor and a connected guard’s acknowledged cursor.',
      registers,
      collect() {
        this.set(runtime.guards.maxLag().entries);
      },
    });
    new Gauge({
      name: 'revokd_guards_max_lag_seconds',
      help: 'Largest age of a log entry that a connected guard has not acknowledged.',
      registers,
      collect() {
        this.set(runtime.guards.maxLag().ms / 1000);
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
  }

  observeRequest(route: string, method: string, status: number, elapsedMs: number): void {
    this.#requests.observe({ route, method, status: String(status) }, elapsedMs / 1000);
  }
}
