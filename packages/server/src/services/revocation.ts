import {
  type LogEntry,
  type RevocationDecision,
  RevocationIndex,
  type Rule,
  tokenFacts,
} from '@revokd/guard';
import { errors as joseErrors } from 'jose';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { OAuthError } from '../core/errors.ts';
import { type RuleLifetimes, ruleFor, type Target } from '../core/rule-policy.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { hashSecret } from '../crypto/secrets.ts';
import type { AuditEvent, ClientRecord, RevocationEffect, Store } from '../store/port.ts';
import { LogFollower } from './log-follower.ts';
import { ACCESS_TOKEN_TYP } from './tokens.ts';

/** Why a revocation happened; recorded with the rule and in the audit log. */
export const REVOCATION_REASONS = [
  'logout',
  'password_changed',
  'suspended',
  'deleted',
  'role_changed',
  'departed',
  'compromised',
  'suspicious_activity',
  'key_compromise',
  'refresh_token_reuse',
  'client_request',
  'administrative',
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

export interface RevocationCommand {
  readonly targets: readonly Target[];
  readonly reason: RevocationReason;
  /** Who asked: a client id, `admin:<client>`, `cli`. */
  readonly actor: string;
  /** Extra durable effects beyond those the targets imply. */
  readonly extraEffects?: readonly RevocationEffect[];
  /** Who the revocation concerns, for the audit log, when the targets do not say (a family's subject and session). */
  readonly auditContext?: Pick<AuditEvent, 'subject' | 'sid' | 'clientId'>;
}

export type TokenTypeHint = 'access_token' | 'refresh_token' | undefined;

const PRUNE_INTERVAL_MS = 60_000;
const POLL_INTERVAL_MS = 1_000;

/**
 * Turns revocation requests into durable rules, keeps this process's in-memory index equal to the log, and
 * answers whether a token is revoked.
 */
export class RevocationService {
  /** In allowlist mode when `tokens.allowlist` is on: then only tokens with an `allow` entry are active. */
  readonly index: RevocationIndex;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #keyring: Keyring;
  readonly #issuer: string;
  readonly #lifetimes: RuleLifetimes;
  readonly #notBeforeMarginUs: number;
  readonly #follower: LogFollower;
  readonly #appliedListeners = new Set<(entries: readonly LogEntry[]) => void>();
  #timers: NodeJS.Timeout[] = [];

  constructor(deps: { config: Config; store: Store; clock: Clock; keyring: Keyring }) {
    this.index = new RevocationIndex({ allowlist: deps.config.tokens.allowlist });
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#keyring = deps.keyring;
    this.#issuer = deps.config.issuer;
    this.#lifetimes = {
      maxAccessTokenTtlMs: deps.config.tokens.maxAccessTokenTtlSeconds * 1000,
      clockSkewMs: deps.config.tokens.clockSkewSeconds * 1000,
    };
    this.#notBeforeMarginUs = notBeforeMarginMs(deps.config) * 1000;
    this.#follower = new LogFollower(deps.store, this.index, (entries) => this.#notifyApplied(entries));
  }

  /** Loads the active rules, then follows the log and prunes expired rules on timers (`follow: false` for the CLI). */
  async start(options: { follow: boolean }): Promise<void> {
    const snapshot = await this.#store.snapshot(this.#clock.nowMs());
    this.index.reset(snapshot.rules, snapshot.cursor);
    await this.#follower.catchUp();
    if (!options.follow) return;
    this.#timers = [
      setInterval(() => void this.#follower.catchUp().catch(() => {}), POLL_INTERVAL_MS),
      setInterval(() => void this.prune().catch(() => {}), PRUNE_INTERVAL_MS),
    ];
    for (const timer of this.#timers) timer.unref();
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }

  /** Entry point for the store's log listener (the in-process feed). */
  onAppended(entries: readonly LogEntry[]): void {
    this.#follower.push(entries);
  }

  /**
   * Subscribes to the entries this process's index applies, whoever committed them: called synchronously right
   * after each apply, in cursor order, with only the entries that were new to the index (the feed stream
   * forwards them to guards). Returns the unsubscribe function. A throwing listener does not disturb the others.
   */
  onApplied(listener: (entries: readonly LogEntry[]) => void): () => void {
    this.#appliedListeners.add(listener);
    return () => {
      this.#appliedListeners.delete(listener);
    };
  }

  /** Applies entries other processes have committed and this index has not seen yet. */
  catchUp(): Promise<void> {
    return this.#follower.catchUp();
  }

  /** Resolves once this process's index reflects the log up to `cursor` (e.g. an `allow` entry just written). */
  waitFor(cursor: number): Promise<void> {
    return this.#follower.waitFor(cursor);
  }

  #notifyApplied(entries: readonly LogEntry[]): void {
    for (const { rule } of entries) if ('notBeforeUs' in rule) this.#clock.observeUs(rule.notBeforeUs);
    for (const listener of this.#appliedListeners) {
      try {
        listener(entries);
      } catch {
        // A subscriber's failure is its own (a closed stream); the index and other subscribers carry on.
      }
    }
  }

  ruleFor(target: Target): Rule {
    const nowMs = this.#clock.nowMs();
    // The margin covers tokens another node issued just before this rule with a clock running ahead of this one;
    // taken from the wall clock (not the logical one), so successive rules cannot ratchet the clocks forward.
    const notBeforeUs = Math.max(nowMs * 1000 + this.#notBeforeMarginUs, this.#clock.nowUs());
    // Tokens this node issues from now on come after the rule (a user who logs in again at once is let in).
    this.#clock.observeUs(notBeforeUs);
    return ruleFor(target, nowMs, notBeforeUs, this.#lifetimes);
  }

  /** Writes the rules and effects for the targets durably, and returns once this process enforces them. */
  async revoke(command: RevocationCommand): Promise<LogEntry[]> {
    const now = this.#clock.nowMs();
    const rules = command.targets.map((t) => this.ruleFor(t));
    const effects = [...command.targets.flatMap(effectsOf), ...(command.extraEffects ?? [])];
    const audit: AuditEvent[] = command.targets.map((target) => ({
      type: 'revoked',
      atMs: now,
      actor: command.actor,
      reason: command.reason,
      ...command.auditContext,
      ...auditFields(target),
    }));
    const entries = await this.#store.revoke({ rules, effects, reason: command.reason, nowMs: now, audit });
    const last = entries.at(-1);
    if (last) await this.#follower.waitFor(last.cursor);
    return entries;
  }

  /** Suspends a subject: no new tokens or refreshes until reinstated, and every token it holds is rejected. */
  suspendSubject(subject: string, actor: string): Promise<LogEntry[]> {
    return this.revoke({
      targets: [{ kind: 'subject', sub: subject }],
      reason: 'suspended',
      actor,
      extraEffects: [{ kind: 'suspend-subject', subject }],
    });
  }

  /** Checks a verified access-token payload against the index. */
  check(payload: Readonly<Record<string, unknown>>): RevocationDecision {
    return this.index.check(tokenFacts(payload), this.#clock.nowMs());
  }

  async prune(): Promise<number> {
    const now = this.#clock.nowMs();
    const pruned = await this.#store.prune(now);
    this.index.prune(now);
    return pruned;
  }

  /**
   * RFC 7009: revokes a token presented by a client. Unknown, invalid, expired and foreign-issuer tokens are
   * answered with success and change nothing (§2.2); a JWT is verified against our keys and issuer before any
   * rule is written, so a forged token naming someone's `jti` revokes nothing. A valid token issued to another
   * client is refused with `unauthorized_client` and not revoked. Resolves with the cursor of the rule written,
   * or undefined when none was.
   */
  async revokePresentedToken(
    client: ClientRecord,
    token: string,
    hint: TokenTypeHint,
  ): Promise<number | undefined> {
    const order: Array<'access_token' | 'refresh_token'> =
      hint === 'refresh_token' || !looksLikeJwt(token)
        ? ['refresh_token', 'access_token']
        : ['access_token', 'refresh_token'];
    for (const kind of order) {
      const done =
        kind === 'refresh_token'
          ? await this.#revokeRefreshToken(client, token)
          : await this.#revokeAccessToken(client, token);
      if (done) return done.cursor;
    }
    return undefined;
  }

  /** `false`: not a token of this kind; otherwise handled, with the cursor of the rule written if any. */
  async #revokeRefreshToken(client: ClientRecord, token: string): Promise<false | { cursor?: number }> {
    const found = await this.#store.findRefreshToken(hashSecret(token));
    if (!found) return false;
    refuseForeign(client, found.session.clientId);
    if (!found.familyRevoked) {
      // RFC 7009 §2.1: revoking a refresh token also invalidates the access tokens issued from its grant.
      const { sid, subject } = found.session;
      const entries = await this.revoke({
        targets: [{ kind: 'family', fid: found.fid }],
        reason: 'client_request',
        actor: client.id,
        extraEffects: [{ kind: 'end-session', sid }],
        auditContext: { subject, sid, clientId: client.id },
      });
      return { cursor: entries.at(-1)?.cursor };
    }
    return {};
  }

  async #revokeAccessToken(client: ClientRecord, token: string): Promise<false | { cursor?: number }> {
    if (!looksLikeJwt(token)) return false;
    let payload: Record<string, unknown>;
    try {
      payload = await this.#keyring.verify(token, { issuer: this.#issuer, typ: ACCESS_TOKEN_TYP });
    } catch (error) {
      // An expired token of ours needs no rule; anything unverifiable is "not a token of ours".
      return error instanceof joseErrors.JWTExpired ? {} : false;
    }
    if (typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return false;
    refuseForeign(client, typeof payload.client_id === 'string' ? payload.client_id : undefined);
    const entries = await this.revoke({
      targets: [{ kind: 'token', jti: payload.jti, tokenExpiresAtMs: payload.exp * 1000 }],
      reason: 'client_request',
      actor: client.id,
      auditContext: {
        subject: typeof payload.sub === 'string' ? payload.sub : undefined,
        clientId: client.id,
      },
    });
    return { cursor: entries.at(-1)?.cursor };
  }
}

function refuseForeign(client: ClientRecord, owner: string | undefined): void {
  if (owner !== client.id) {
    throw new OAuthError('unauthorized_client', 'the token was not issued to this client');
  }
}

export function looksLikeJwt(token: string): boolean {
  return token.split('.').length === 3;
}

function effectsOf(target: Target): RevocationEffect[] {
  switch (target.kind) {
    case 'token':
      return [];
    case 'session':
      return [{ kind: 'end-session', sid: target.sid }];
    case 'family':
      return [{ kind: 'end-family', fid: target.fid }];
    case 'subject':
      return [{ kind: 'end-subject-sessions', subject: target.sub }];
    case 'client':
      return [{ kind: 'end-client-sessions', clientId: target.clientId }];
    case 'global':
      return [{ kind: 'end-all-sessions' }];
    case 'claim':
      return [{ kind: 'end-claim-sessions', claim: target.claim, value: target.value }];
  }
}

function auditFields(target: Target): Partial<AuditEvent> {
  switch (target.kind) {
    case 'token':
      return { jti: target.jti, detail: { kind: 'token' } };
    case 'session':
      return { sid: target.sid, detail: { kind: 'session' } };
    case 'family':
      return { detail: { kind: 'family', fid: target.fid } };
    case 'subject':
      return { subject: target.sub, detail: { kind: 'subject' } };
    case 'client':
      return { clientId: target.clientId, detail: { kind: 'client' } };
    case 'global':
      return { detail: { kind: 'global' } };
    case 'claim':
      return { detail: { kind: 'claim', claim: target.claim, value: target.value } };
  }
}

/** `tokens.notBeforeMarginMs`, or its default: 0 for the embedded store (one machine, one clock), 100 ms in cluster mode. */
export function notBeforeMarginMs(config: Config): number {
  return config.tokens.notBeforeMarginMs ?? (config.store.kind === 'sqlite' ? 0 : 100);
}
