/**
 * Token-bucket rate limiting, keyed by any string (a client id, an address). Pure: time is passed in.
 * Buckets that have refilled completely are forgotten, so memory follows the set of recently active keys.
 */
export interface RateLimit {
  readonly ratePerSecond: number;
  readonly burst: number;
}

export type RateDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly retryAfterSeconds: number };

const ALLOWED: RateDecision = Object.freeze({ allowed: true });

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

export class RateLimiter {
  readonly #limit: RateLimit;
  readonly #buckets = new Map<string, Bucket>();
  readonly #maxKeys: number;
  #lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(limit: RateLimit, maxKeys = 100_000) {
    this.#limit = limit;
    this.#maxKeys = maxKeys;
  }

  take(key: string, nowMs: number): RateDecision {
    const { ratePerSecond, burst } = this.#limit;
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= this.#maxKeys) this.#makeRoom(nowMs);
      bucket = { tokens: burst, updatedAtMs: nowMs };
      this.#buckets.set(key, bucket);
    } else {
      const elapsedS = Math.max(0, nowMs - bucket.updatedAtMs) / 1000;
      bucket.tokens = Math.min(burst, bucket.tokens + elapsedS * ratePerSecond);
      bucket.updatedAtMs = nowMs;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return ALLOWED;
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerSecond)) };
  }

  /**
   * Keeps the map bounded under a flood of new keys: sweep at most once a second, and if that frees nothing,
   * forget the oldest bucket.
   */
  #makeRoom(nowMs: number): void {
    if (nowMs - this.#lastSweepMs >= 1000) {
      this.#lastSweepMs = nowMs;
      this.sweep(nowMs);
    }
    if (this.#buckets.size >= this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
  }

  /** Forgets buckets that would be full by now. */
  sweep(nowMs: number): void {
    const { ratePerSecond, burst } = this.#limit;
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + ((nowMs - bucket.updatedAtMs) / 1000) * ratePerSecond >= burst)
        this.#buckets.delete(key);
    }
  }
}
