import type { AllowRule, Rule } from '@revokd/guard';

/** How long rules must live: every token a rule can reject must have expired, on any guard's clock. */
export interface RuleLifetimes {
  /** The longest lifetime any access token can have. */
  readonly maxAccessTokenTtlMs: number;
  /** Allowance for guards whose clocks run behind. */
  readonly clockSkewMs: number;
}

export type Target =
  | { readonly kind: 'token'; readonly jti: string; readonly tokenExpiresAtMs: number }
  | { readonly kind: 'session'; readonly sid: string }
  | { readonly kind: 'family'; readonly fid: string }
  | { readonly kind: 'subject'; readonly sub: string }
  | { readonly kind: 'client'; readonly clientId: string }
  | { readonly kind: 'global' }
  | { readonly kind: 'claim'; readonly claim: string; readonly value: string };

/**
 * The `allow` entry of an access token (allowlist mode): it lives as long as a token rule would, until the
 * token's `exp` on any guard's clock.
 */
export function allowRuleFor(jti: string, tokenExpiresAtMs: number, clockSkewMs: number): AllowRule {
  return { kind: 'allow', jti, expiresAtMs: tokenExpiresAtMs + clockSkewMs };
}

/**
 * Builds the rule for a revocation target at instant `nowMs`/`nowUs`, with the earliest safe expiry:
 * a token rule lives until the token's own `exp`; every other rule until the last token it can cover has expired.
 */
export function ruleFor(target: Target, nowMs: number, nowUs: number, lifetimes: RuleLifetimes): Rule {
  const coverAll = nowMs + lifetimes.maxAccessTokenTtlMs + lifetimes.clockSkewMs;
  switch (target.kind) {
    case 'token':
      return { kind: 'token', jti: target.jti, expiresAtMs: target.tokenExpiresAtMs + lifetimes.clockSkewMs };
    case 'session':
      return { kind: 'session', sid: target.sid, expiresAtMs: coverAll };
    case 'family':
      return { kind: 'family', fid: target.fid, expiresAtMs: coverAll };
    case 'subject':
      return { kind: 'subject', sub: target.sub, notBeforeUs: nowUs, expiresAtMs: coverAll };
    case 'client':
      return { kind: 'client', clientId: target.clientId, notBeforeUs: nowUs, expiresAtMs: coverAll };
    case 'global':
      return { kind: 'global', notBeforeUs: nowUs, expiresAtMs: coverAll };
    case 'claim':
      return {
        kind: 'claim',
        claim: target.claim,
        value: target.value,
        notBeforeUs: nowUs,
        expiresAtMs: coverAll,
      };
  }
}
