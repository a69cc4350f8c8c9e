/**
 * The refresh-token rotation policy (RFC 9700 §4.14.2), as a pure decision over stored state.
 * A store reads the presented token, its family and session inside one transaction (or row lock), asks
 * {@link decideRotation}, and applies the decision in that same transaction, so concurrent refreshes and a
 * revocation racing a refresh are serialised by the store and never undo each other.
 */

export interface PresentedRefreshToken {
  readonly clientId: string;
  /** When this token was rotated (ms), or null while it is the family's current token. */
  readonly rotatedAtMs: number | null;
  /** Hash of the token it was rotated to, or null. */
  readonly successorHash: string | null;
}

export interface RefreshFamilyState {
  /** Hash of the family's current (only usable) token. */
  readonly headHash: string;
  readonly revoked: boolean;
}

export interface RefreshSessionState {
  readonly revoked: boolean;
  readonly lastUsedAtMs: number;
  readonly absoluteExpiresAtMs: number;
  readonly subjectSuspended: boolean;
}

export interface RotationPolicy {
  /** 0 disables the grace period. */
  readonly graceMs: number;
  readonly idleTtlMs: number;
}

export type RejectReason = 'client_mismatch' | 'revoked' | 'suspended' | 'session_expired' | 'idle_expired';

export type RotationDecision =
  /** The token is the family's head: rotate it to a new successor. */
  | { readonly kind: 'rotate' }
  /** The token is the head's immediate parent, presented again within the grace period: return the same head. */
  | { readonly kind: 'replay' }
  /** A rotated token presented again outside the grace rule: revoke the family and its session. */
  | { readonly kind: 'reuse' }
  /** The grant is no longer usable; nothing changes. */
  | { readonly kind: 'reject'; readonly reason: RejectReason };

export function decideRotation(
  token: PresentedRefreshToken,
  family: RefreshFamilyState,
  session: RefreshSessionState,
  presentingClientId: string,
  nowMs: number,
  policy: RotationPolicy,
): RotationDecision {
  // A token presented by another client is not evidence of theft from its own client; it is simply not theirs.
  if (token.clientId !== presentingClientId) return { kind: 'reject', reason: 'client_mismatch' };
  if (family.revoked || session.revoked) return { kind: 'reject', reason: 'revoked' };
  if (session.subjectSuspended) return { kind: 'reject', reason: 'suspended' };
  if (nowMs >= session.absoluteExpiresAtMs) return { kind: 'reject', reason: 'session_expired' };
  if (nowMs >= session.lastUsedAtMs + policy.idleTtlMs) return { kind: 'reject', reason: 'idle_expired' };
  if (token.successorHash === null) return { kind: 'rotate' };
  const withinGrace =
    policy.graceMs > 0 && token.rotatedAtMs !== null && nowMs - token.rotatedAtMs <= policy.graceMs;
  if (withinGrace && token.successorHash === family.headHash) return { kind: 'replay' };
  return { kind: 'reuse' };
}
