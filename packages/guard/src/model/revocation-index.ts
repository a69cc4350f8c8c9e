import { FingerprintTable } from './fingerprint-table.ts';
import type { LogEntry, RevocationKind, Rule, TokenFacts } from './rule.ts';

/**
 * The outcome of a revocation check: a value, never an exception, so the hot path allocates nothing on rejection.
 * `by: 'allowlist'`: in allowlist mode, no live `allow` entry names the token's `jti`.
 */
export type RevocationDecision =
  | { readonly revoked: false }
  | { readonly revoked: true; readonly by: RevocationKind | 'allowlist' };

export interface RevocationIndexOptions {
  /**
   * Allowlist mode: keep `allow` entries and reject every token whose `jti` no live `allow` entry names (on top
   * of the revocation rules). Default false: `allow` entries are ignored and cost nothing.
   */
  readonly allowlist?: boolean;
}

const NOT_REVOKED: RevocationDecision = Object.freeze({ revoked: false });
const NOT_ALLOWED: RevocationDecision = Object.freeze({ revoked: true, by: 'allowlist' });
const REVOKED_BY: Readonly<Record<RevocationKind, RevocationDecision>> = Object.freeze({
  token: Object.freeze({ revoked: true, by: 'token' }),
  session: Object.freeze({ revoked: true, by: 'session' }),
  family: Object.freeze({ revoked: true, by: 'family' }),
  subject: Object.freeze({ revoked: true, by: 'subject' }),
  client: Object.freeze({ revoked: true, by: 'client' }),
  global: Object.freeze({ revoked: true, by: 'global' }),
  claim: Object.freeze({ revoked: true, by: 'claim' }),
});

/** A not-before bound: tokens issued before `notBeforeUs` are rejected until `expiresAtMs`. */
interface Bound {
  notBeforeUs: number;
  expiresAtMs: number;
}

/**
 * The in-memory set of active revocation rules, and the check of a token against it.
 *
 * Pure: no I/O, no clock of its own (callers pass `nowMs`). Several rules for the same key merge into one entry
 * (the latest not-before and the latest expiry), so "revoke everything of a user" costs one entry however often it
 * is repeated, and memory is bounded by the number of distinct active keys.
 *
 * In allowlist mode it also holds one entry per live issued token (`allow` entries), and accepts only those.
 *
 * The high-cardinality kinds (token `jti`, session `sid`, family `fid`, allowed `jti`) live in
 * {@link FingerprintTable}s, one per kind: a 64-bit fingerprint and an expiry in whole seconds per entry (~25 B at 1M
 * entries), not the key string. Two consequences, both in the safe direction for revocations: a token whose
 * identifier was never revoked is rejected with probability ≈ n / 2^64 (a fingerprint collision with one of n
 * entries of that kind), and an entry may stay live up to 999 ms past its `expiresAtMs` (expiries are rounded up to
 * the second). See fingerprint-table.ts. The not-before kinds (few keys, exact microsecond bounds) stay in Maps.
 */
export class RevocationIndex {
  readonly #allowlist: boolean;
  /** jti → expiry of its `allow` entry; filled only in allowlist mode. */
  readonly #allowed = new FingerprintTable();
  readonly #tokens = new FingerprintTable();
  readonly #sessions = new FingerprintTable();
  readonly #families = new FingerprintTable();
  readonly #subjects = new Map<string, Bound>();
  readonly #clients = new Map<string, Bound>();
  /** claim name → claim value → bound. */
  readonly #claims = new Map<string, Map<string, Bound>>();
  #global: Bound | undefined;
  #cursor = 0;

  constructor(options: RevocationIndexOptions = {}) {
    this.#allowlist = options.allowlist === true;
  }

  /** Whether the index is in allowlist mode. */
  get allowlist(): boolean {
    return this.#allowlist;
  }

  /** The cursor of the last log entry applied (0 before any). */
  get cursor(): number {
    return this.#cursor;
  }

  /** Number of distinct active entries (not rules: merged rules count once), `allow` entries included. */
  get size(): number {
    let claimEntries = 0;
    for (const values of this.#claims.values()) claimEntries += values.size;
    return (
      this.#tokens.size +
      this.#sessions.size +
      this.#families.size +
      this.#subjects.size +
      this.#clients.size +
      claimEntries +
      (this.#global ? 1 : 0) +
      this.#allowed.size
    );
  }

  /** Applies log entries in order. Entries at or below the current cursor are ignored (idempotent replay). */
  apply(entries: Iterable<LogEntry>): void {
    for (const entry of entries) {
      if (entry.cursor <= this.#cursor) continue;
      this.add(entry.rule);
      this.#cursor = entry.cursor;
    }
  }

  /** Adds one rule without moving the cursor. An `allow` entry is ignored unless in allowlist mode. */
  add(rule: Rule): void {
    switch (rule.kind) {
      case 'allow':
        if (this.#allowlist) this.#allowed.merge(rule.jti, rule.expiresAtMs);
        return;
      case 'token':
        this.#tokens.merge(rule.jti, rule.expiresAtMs);
        return;
      case 'session':
        this.#sessions.merge(rule.sid, rule.expiresAtMs);
        return;
      case 'family':
        this.#families.merge(rule.fid, rule.expiresAtMs);
        return;
      case 'subject':
        mergeBound(this.#subjects, rule.sub, rule);
        return;
      case 'client':
        mergeBound(this.#clients, rule.clientId, rule);
        return;
      case 'global':
        this.#global = this.#global ? widen(this.#global, rule) : { ...pickBound(rule) };
        return;
      case 'claim': {
        let values = this.#claims.get(rule.claim);
        if (!values) {
          values = new Map();
          this.#claims.set(rule.claim, values);
        }
        mergeBound(values, rule.value, rule);
        return;
      }
    }
  }

  /**
   * Checks a verified token. A rule whose expiry has passed no longer applies even before it is pruned, so the
   * answer does not depend on when pruning last ran. In allowlist mode a token is rejected (`by: 'allowlist'`)
   * unless a live `allow` entry names its `jti`, and the revocation rules are checked first.
   */
  check(token: TokenFacts, nowMs: number): RevocationDecision {
    if (token.jti !== undefined && this.#tokens.isLive(token.jti, nowMs)) return REVOKED_BY.token;
    if (token.sid !== undefined && this.#sessions.isLive(token.sid, nowMs)) return REVOKED_BY.session;
    if (token.fid !== undefined && this.#families.isLive(token.fid, nowMs)) return REVOKED_BY.family;
    if (token.sub !== undefined && rejects(this.#subjects.get(token.sub), token, nowMs))
      return REVOKED_BY.subject;
    if (token.clientId !== undefined && rejects(this.#clients.get(token.clientId), token, nowMs)) {
      return REVOKED_BY.client;
    }
    if (rejects(this.#global, token, nowMs)) return REVOKED_BY.global;
    if (this.#claims.size > 0 && this.#claimRejects(token, nowMs)) return REVOKED_BY.claim;
    if (this.#allowlist && (token.jti === undefined || !this.#allowed.isLive(token.jti, nowMs))) {
      return NOT_ALLOWED;
    }
    return NOT_REVOKED;
  }

  /**
   * Drops every rule whose expiry is at or before `nowMs` (for the fingerprint-table kinds: the expiry rounded up to
   * the second). Returns how many entries were dropped.
   */
  prune(nowMs: number): number {
    let dropped = this.#tokens.prune(nowMs);
    dropped += this.#sessions.prune(nowMs);
    dropped += this.#families.prune(nowMs);
    dropped += pruneMap(this.#subjects, (b) => b.expiresAtMs, nowMs);
    dropped += pruneMap(this.#clients, (b) => b.expiresAtMs, nowMs);
    for (const [claim, values] of this.#claims) {
      dropped += pruneMap(values, (b) => b.expiresAtMs, nowMs);
      if (values.size === 0) this.#claims.delete(claim);
    }
    if (this.#global && this.#global.expiresAtMs <= nowMs) {
      this.#global = undefined;
      dropped += 1;
    }
    dropped += this.#allowed.prune(nowMs);
    return dropped;
  }

  /** Replaces the whole content with a snapshot taken at `cursor`. */
  reset(rules: Iterable<Rule>, cursor: number): void {
    this.#tokens.clear();
    this.#sessions.clear();
    this.#families.clear();
    this.#subjects.clear();
    this.#clients.clear();
    this.#claims.clear();
    this.#global = undefined;
    this.#allowed.clear();
    for (const rule of rules) this.add(rule);
    this.#cursor = cursor;
  }

  #claimRejects(token: TokenFacts, nowMs: number): boolean {
    for (const [claim, values] of this.#claims) {
      const present = token.claims[claim];
      if (typeof present === 'string') {
        if (rejects(values.get(present), token, nowMs)) return true;
      } else if (Array.isArray(present)) {
        for (const item of present) {
          if (typeof item === 'string' && rejects(values.get(item), token, nowMs)) return true;
        }
      }
    }
    return false;
  }
}

/**
 * A not-before bound rejects a token issued strictly before it. Without an exact issuance time the token may
 * have been issued anywhere in its `iat` second, so it is rejected unless that whole second is at or after the bound.
 */
function rejects(bound: Bound | undefined, token: TokenFacts, nowMs: number): boolean {
  if (bound === undefined || bound.expiresAtMs <= nowMs) return false;
  return token.issuedAtUs < bound.notBeforeUs;
}

function pickBound(rule: { notBeforeUs: number; expiresAtMs: number }): Bound {
  return { notBeforeUs: rule.notBeforeUs, expiresAtMs: rule.expiresAtMs };
}

function widen(bound: Bound, rule: { notBeforeUs: number; expiresAtMs: number }): Bound {
  bound.notBeforeUs = Math.max(bound.notBeforeUs, rule.notBeforeUs);
  bound.expiresAtMs = Math.max(bound.expiresAtMs, rule.expiresAtMs);
  return bound;
}

function mergeBound(
  map: Map<string, Bound>,
  key: string,
  rule: { notBeforeUs: number; expiresAtMs: number },
): void {
  const current = map.get(key);
  if (current) widen(current, rule);
  else map.set(key, pickBound(rule));
}

function pruneMap<V>(map: Map<string, V>, expiry: (value: V) => number, nowMs: number): number {
  let dropped = 0;
  for (const [key, value] of map) {
    if (expiry(value) <= nowMs) {
      map.delete(key);
      dropped += 1;
    }
  }
  return dropped;
}
