import type { RevocationKind } from './model/rule.ts';
import { VERIFY_FAILURE_REASONS, type VerifiedToken, type VerifyFailureReason } from './verify/verifier.ts';

/** A token the guard accepts. `stale` is set when it was accepted under `stalePolicy: 'accept'`. */
export interface GuardAcceptance extends VerifiedToken {
  readonly stale?: true;
}

/**
 * The token is invalid, revoked, or (`not_allowed`, allowlist mode only) its issuance has not reached this guard:
 * 401 with an RFC 6750 challenge.
 */
export interface InvalidTokenRejection {
  readonly ok: false;
  readonly status: 401;
  readonly error: 'invalid_token';
  readonly reason: VerifyFailureReason | 'revoked' | 'not_allowed';
  /** The kind of rule that revoked the token, when `reason` is `revoked`. */
  readonly revokedBy?: RevocationKind;
}

/** No bearer token at all: 401 with a challenge that carries no error code (RFC 6750 §3.1). */
export interface MissingTokenRejection {
  readonly ok: false;
  readonly status: 401;
  readonly error: undefined;
  readonly reason: 'missing_token';
}

/**
 * The guard cannot vouch for its revocation index (`stale`: freshness not confirmed within `maxStalenessMs`
 * under `stalePolicy: 'reject'`) or has no keys yet (`not_ready`): 503, retry later.
 */
export interface UnavailableRejection {
  readonly ok: false;
  readonly status: 503;
  readonly error: 'temporarily_unavailable';
  readonly reason: 'stale' | 'not_ready';
}

export type GuardRejection = InvalidTokenRejection | MissingTokenRejection | UnavailableRejection;

/** The guard's answer for one request: a value, never an exception. Rejections are shared frozen objects. */
export type GuardDecision = GuardAcceptance | GuardRejection;

export const INVALID_TOKEN: Readonly<Record<VerifyFailureReason, InvalidTokenRejection>> = Object.freeze(
  Object.fromEntries(
    VERIFY_FAILURE_REASONS.map((reason) => [
      reason,
      Object.freeze({ ok: false, status: 401, error: 'invalid_token', reason } as const),
    ]),
  ),
) as Readonly<Record<VerifyFailureReason, InvalidTokenRejection>>;

const revoked = (by: RevocationKind): InvalidTokenRejection =>
  Object.freeze({ ok: false, status: 401, error: 'invalid_token', reason: 'revoked', revokedBy: by });

export const REVOKED: Readonly<Record<RevocationKind, InvalidTokenRejection>> = Object.freeze({
  token: revoked('token'),
  session: revoked('session'),
  family: revoked('family'),
  subject: revoked('subject'),
  client: revoked('client'),
  global: revoked('global'),
  claim: revoked('claim'),
});

/**
 * Allowlist mode: no `allow` entry for the token has reached the guard. Either it was never issued by revokd, or
 * its issuance is still on its way (usually milliseconds): a client may retry once.
 */
export const NOT_ALLOWED: InvalidTokenRejection = Object.freeze({
  ok: false,
  status: 401,
  error: 'invalid_token',
  reason: 'not_allowed',
});

export const MISSING_TOKEN: MissingTokenRejection = Object.freeze({
  ok: false,
  status: 401,
  error: undefined,
  reason: 'missing_token',
});

export const STALE: UnavailableRejection = Object.freeze({
  ok: false,
  status: 503,
  error: 'temporarily_unavailable',
  reason: 'stale',
});

export const NOT_READY: UnavailableRejection = Object.freeze({
  ok: false,
  status: 503,
  error: 'temporarily_unavailable',
  reason: 'not_ready',
});
