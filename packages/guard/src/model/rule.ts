/**
 * The revocation model shared by the server and every guard.
 *
 * A rule is appended to an ordered, durable log; each rule carries the instant after which no token it could
 * reject is still valid (`expiresAtMs`), so it can be pruned everywhere once that instant has passed.
 *
 * One kind of log entry is not a revocation: `allow` records the issuance of an access token, for allowlist mode
 * (only tokens whose `allow` entry has reached the checker are accepted). A checker in the default (denylist)
 * mode ignores `allow` entries.
 *
 * Units are in the names: `…Ms` is milliseconds since the Unix epoch, `…Us` microseconds since the epoch.
 * Not-before rules use microseconds so that a token issued right after the rule (in the same second, even the
 * same millisecond) is not rejected.
 */
export type Rule =
  /** Rejects the token with this `jti` (RFC 7009 revocation of one access token). Expires at the token's `exp`. */
  | { readonly kind: 'token'; readonly jti: string; readonly expiresAtMs: number }
  /** Rejects every token carrying this `sid`. */
  | { readonly kind: 'session'; readonly sid: string; readonly expiresAtMs: number }
  /** Rejects every access token minted from this refresh-token family (claim `fid`). */
  | { readonly kind: 'family'; readonly fid: string; readonly expiresAtMs: number }
  /** Rejects tokens of this subject issued before `notBeforeUs`. */
  | {
      readonly kind: 'subject';
      readonly sub: string;
      readonly notBeforeUs: number;
      readonly expiresAtMs: number;
    }
  /** Rejects tokens of this client issued before `notBeforeUs`. */
  | {
      readonly kind: 'client';
      readonly clientId: string;
      readonly notBeforeUs: number;
      readonly expiresAtMs: number;
    }
  /** Rejects every token issued before `notBeforeUs` (signing-key compromise). */
  | { readonly kind: 'global'; readonly notBeforeUs: number; readonly expiresAtMs: number }
  /** Rejects tokens whose claim `claim` has (or, for arrays, contains) `value` and that were issued before `notBeforeUs`. */
  | {
      readonly kind: 'claim';
      readonly claim: string;
      readonly value: string;
      readonly notBeforeUs: number;
      readonly expiresAtMs: number;
    }
  | AllowRule;

/**
 * Not a revocation but an allow grant: the access token with this `jti` was issued. Written by the server in
 * allowlist mode before the token is returned; expires at the token's `exp` plus the clock skew. Only an index in
 * allowlist mode keeps it; all revocation rules still apply to an allowed token.
 */
export interface AllowRule {
  readonly kind: 'allow';
  readonly jti: string;
  readonly expiresAtMs: number;
}

export type RuleKind = Rule['kind'];

/** The kinds of rule that reject tokens: every kind but `allow`. */
export type RevocationKind = Exclude<RuleKind, 'allow'>;

/** Every kind of log entry the wire carries. */
export const RULE_KINDS: readonly RuleKind[] = [
  'token',
  'session',
  'family',
  'subject',
  'client',
  'global',
  'claim',
  'allow',
];

/** The kinds of rule that reject tokens (every {@link RULE_KINDS} member but `allow`). */
export const REVOCATION_KINDS: readonly RevocationKind[] = RULE_KINDS.filter(
  (kind): kind is RevocationKind => kind !== 'allow',
);

/** A rule at its position in the log. Cursors increase strictly with log order. */
export interface LogEntry {
  readonly cursor: number;
  readonly rule: Rule;
}

/**
 * What the revocation check needs to know about a verified access token.
 * `issuedAtUs` is exact when the token carries `iat_us`; otherwise it is `iat` in microseconds and `exactIssuedAt`
 * is false, and not-before rules then treat the whole second as possibly before the rule (fail closed).
 */
export interface TokenFacts {
  readonly jti: string | undefined;
  readonly sub: string | undefined;
  readonly clientId: string | undefined;
  readonly sid: string | undefined;
  readonly fid: string | undefined;
  readonly issuedAtUs: number;
  readonly exactIssuedAt: boolean;
  /** The token's claims, for claim rules. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/** A short stable description of the rule a token matched, for logs and introspection; never includes the token. */
export function describeRule(rule: Rule): string {
  switch (rule.kind) {
    case 'token':
      return `token:${rule.jti}`;
    case 'session':
      return `session:${rule.sid}`;
    case 'family':
      return `family:${rule.fid}`;
    case 'subject':
      return `subject:${rule.sub}`;
    case 'client':
      return `client:${rule.clientId}`;
    case 'global':
      return 'global';
    case 'claim':
      return `claim:${rule.claim}=${rule.value}`;
    case 'allow':
      return `allow:${rule.jti}`;
  }
}
