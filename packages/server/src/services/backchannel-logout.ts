import { randomUUID } from 'node:crypto';
import { BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TYP } from '@revokd/guard';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { AuditEvent, LogoutDelivery, Store } from '../store/port.ts';

export type BackchannelLogoutSettings = Config['backchannelLogout'];

/** What to do with a delivery whose attempt failed. */
export type FailedAttemptDecision =
  | { readonly kind: 'retry'; readonly nextAttemptAtMs: number }
  | { readonly kind: 'give-up' };

/**
 * The delay before retrying a delivery after its `attempts`-th failed attempt: `initialBackoffMs` doubling per
 * attempt up to `maxBackoffMs`, scaled by a jitter factor in [0.5, 1) so many deliveries to one client spread out.
 */
export function backoffMs(
  attempts: number,
  settings: BackchannelLogoutSettings,
  random: () => number,
): number {
  const exponential = settings.initialBackoffMs * 2 ** Math.min(Math.max(attempts - 1, 0), 40);
  const capped = Math.min(settings.maxBackoffMs, exponential);
  return Math.max(1, Math.round(capped * (0.5 + random() / 2)));
}

/** Gives up once `maxAttempts` attempts were made or the delivery is `maxAgeMs` old; otherwise retries later. */
export function decideAfterFailure(
  delivery: Pick<LogoutDelivery, 'attempts' | 'createdAtMs'>,
  nowMs: number,
  settings: BackchannelLogoutSettings,
  random: () => number,
): FailedAttemptDecision {
  if (delivery.attempts >= settings.maxAttempts) return { kind: 'give-up' };
  const nextAttemptAtMs = nowMs + backoffMs(delivery.attempts, settings, random);
  if (nextAttemptAtMs - delivery.createdAtMs > settings.maxAgeMs) return { kind: 'give-up' };
  return { kind: 'retry', nextAttemptAtMs };
}

export interface BackchannelLogoutDeps {
  readonly config: Pick<Config, 'issuer' | 'backchannelLogout'>;
  readonly store: Store;
  readonly keyring: Keyring;
  readonly clock: Clock;
  /** Default: the global `fetch`. */
  readonly fetch?: typeof globalThis.fetch;
  /** Jitter source in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
}

type AttemptResult =
  | { readonly ok: true; readonly status: number; readonly jti: string }
  | { readonly ok: false; readonly error: string; readonly status?: number };

const FORM = 'application/x-www-form-urlencoded';

/**
 * Delivers OpenID Connect Back-Channel Logout tokens from the store's outbox. The outbox rows are written in the
 * transaction that ends the sessions, so a delivery survives a crash right after the revocation commits; this
 * dispatcher claims due rows (a lease, so several server nodes never send one twice at once), signs a fresh
 * logout token per attempt, POSTs it, and settles the row: delivered, retried later with exponential backoff, or
 * given up — each final outcome recorded in the audit log (`logout_delivered`, `logout_failed`). Delivery is
 * at least once: a process that dies mid-attempt leaves the row to be claimed again after its lease.
 *
 * It polls on `pollIntervalMs` (rows queued by the CLI or another node) and is poked after each local revocation.
 * It never logs or records a logout token; the audit holds its `jti`.
 *
 * @see https://openid.net/specs/openid-connect-backchannel-1_0.html#BCRequest
 */
export class BackchannelLogoutDispatcher {
  readonly #issuer: string;
  readonly #settings: BackchannelLogoutSettings;
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #clock: Clock;
  readonly #fetch: typeof globalThis.fetch;
  readonly #random: () => number;
  readonly #leaseMs: number;
  readonly #stopping = new AbortController();
  #running: Promise<void> | undefined;
  #again = false;
  #poll: NodeJS.Timeout | undefined;
  #wake: { timer: NodeJS.Timeout; atMs: number } | undefined;

  constructor(deps: BackchannelLogoutDeps) {
    this.#issuer = deps.config.issuer;
    this.#settings = deps.config.backchannelLogout;
    this.#store = deps.store;
    this.#keyring = deps.keyring;
    this.#clock = deps.clock;
    this.#fetch = deps.fetch ?? globalThis.fetch;
    this.#random = deps.random ?? Math.random;
    // Longer than one attempt can take (the POST is cut at timeoutMs), so a live dispatcher keeps its claim.
    this.#leaseMs = 2 * this.#settings.timeoutMs + 1000;
  }

  /** Starts polling the outbox, and delivers what is due now. */
  start(): void {
    if (this.#stopping.signal.aborted || this.#poll) return;
    this.#poll = setInterval(() => this.poke(), this.#settings.pollIntervalMs);
    this.#poll.unref();
    this.poke();
  }

  /** Delivers what is due now (a revocation just committed); cheap, never throws, coalesces concurrent pokes. */
  poke(): void {
    if (this.#stopping.signal.aborted) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
    });
  }

  /** Resolves once the current round of deliveries (if any) has settled. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Stops: no new claims; attempts in flight are aborted and left unsettled, to be claimed again (by this or
   * another process) once their lease expires.
   */
  async stop(): Promise<void> {
    this.#stopping.abort();
    clearInterval(this.#poll);
    if (this.#wake) clearTimeout(this.#wake.timer);
    await this.idle();
  }

  async #drain(): Promise<void> {
    do {
      this.#again = false;
      for (;;) {
        if (this.#stopping.signal.aborted) return;
        let batch: LogoutDelivery[];
        try {
          batch = await this.#store.claimLogoutDeliveries(
            this.#clock.nowMs(),
            this.#settings.concurrency,
            this.#leaseMs,
          );
        } catch {
          return; // The store is unavailable: the next poll tries again.
        }
        if (batch.length === 0) break;
        await Promise.all(batch.map((delivery) => this.#deliver(delivery)));
      }
    } while (this.#again);
  }

  async #deliver(delivery: LogoutDelivery): Promise<void> {
    const result = await this.#attempt(delivery);
    if (this.#stopping.signal.aborted) return; // Unsettled: claimed again after the lease.
    const nowMs = this.#clock.nowMs();
    const base = {
      atMs: nowMs,
      actor: 'system',
      subject: delivery.subject,
      clientId: delivery.clientId,
      sid: delivery.sid,
      reason: delivery.reason,
    } satisfies Partial<AuditEvent>;
    try {
      if (result.ok) {
        const event: AuditEvent = {
          ...base,
          type: 'logout_delivered',
          jti: result.jti,
          detail: { attempts: delivery.attempts, status: result.status },
        };
        await this.#store.completeLogoutDelivery(delivery, { kind: 'delivered', audit: [event] });
        return;
      }
      const decision = decideAfterFailure(delivery, nowMs, this.#settings, this.#random);
      if (decision.kind === 'retry') {
        await this.#store.completeLogoutDelivery(delivery, {
          kind: 'retry',
          nextAttemptAtMs: decision.nextAttemptAtMs,
          error: result.error,
        });
        this.#wakeAt(decision.nextAttemptAtMs);
        return;
      }
      const event: AuditEvent = {
        ...base,
        type: 'logout_failed',
        detail: {
          attempts: delivery.attempts,
          error: result.error,
          ...(result.status === undefined ? {} : { status: result.status }),
        },
      };
      await this.#store.completeLogoutDelivery(delivery, { kind: 'failed', audit: [event] });
    } catch {
      // Not settled: the row is claimed again once its lease expires.
    }
  }

  async #attempt(delivery: LogoutDelivery): Promise<AttemptResult> {
    const jti = randomUUID();
    const iat = Math.floor(this.#clock.nowMs() / 1000);
    let token: string;
    try {
      token = await this.#keyring.sign(
        {
          iss: this.#issuer,
          aud: delivery.clientId,
          iat,
          exp: iat + this.#settings.tokenTtlSeconds,
          jti,
          sub: delivery.subject,
          sid: delivery.sid,
          events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
        },
        LOGOUT_TOKEN_TYP,
      );
    } catch {
      return { ok: false, error: 'signing_failed' };
    }
    const timeout = AbortSignal.timeout(this.#settings.timeoutMs);
    let response: Response;
    try {
      response = await this.#fetch(delivery.uri, {
        method: 'POST',
        headers: { 'content-type': FORM, accept: 'application/json' },
        body: new URLSearchParams({ logout_token: token }).toString(),
        // A redirect would carry the token elsewhere: never followed, counted as a failure.
        redirect: 'manual',
        signal: AbortSignal.any([this.#stopping.signal, timeout]),
      });
    } catch (error) {
      if (timeout.aborted) return { ok: false, error: 'timeout' };
      return { ok: false, error: networkError(error) };
    }
    // The body is not needed (an error body is the client's business); drop it without reading.
    await response.body?.cancel().catch(() => {});
    // §2.8: 200, or 204 from frameworks that substitute it.
    if (response.status >= 200 && response.status < 300) return { ok: true, status: response.status, jti };
    return { ok: false, error: `http_${response.status}`, status: response.status };
  }

  /** Pokes at `atMs` (a retry falling before the next poll), keeping only the earliest pending wake-up. */
  #wakeAt(atMs: number): void {
    if (this.#stopping.signal.aborted || (this.#wake && this.#wake.atMs <= atMs)) return;
    if (this.#wake) clearTimeout(this.#wake.timer);
    const timer = setTimeout(
      () => {
        this.#wake = undefined;
        this.poke();
      },
      Math.max(0, atMs - this.#clock.nowMs()),
    );
    timer.unref();
    this.#wake = { timer, atMs };
  }
}

/** A short, token-free description of a failed fetch: its system error code when there is one. */
function networkError(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  return code && /^[A-Z0-9_]{1,40}$/.test(code) ? `network_error:${code}` : 'network_error';
}
