import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decideRotation,
  type PresentedRefreshToken,
  type RefreshFamilyState,
  type RefreshSessionState,
  type RotationDecision,
  type RotationPolicy,
} from '../../src/core/refresh-rotation.ts';

const NOW = Date.UTC(2026, 0, 1, 12);
const GRACE_MS = 10_000;
const IDLE_MS = 14 * 86_400_000;
const POLICY: RotationPolicy = { graceMs: GRACE_MS, idleTtlMs: IDLE_MS };

/** The family's current token. */
const HEAD: PresentedRefreshToken = { clientId: 'app', rotatedAtMs: null, successorHash: null };
/** The head's immediate parent, rotated 1 s ago. */
const PARENT: PresentedRefreshToken = { clientId: 'app', rotatedAtMs: NOW - 1000, successorHash: 'h-head' };
/** The parent's parent, rotated 2 s ago (its successor is PARENT, no longer the head). */
const GRANDPARENT: PresentedRefreshToken = {
  clientId: 'app',
  rotatedAtMs: NOW - 2000,
  successorHash: 'h-parent',
};
const FAMILY: RefreshFamilyState = { headHash: 'h-head', revoked: false };
const SESSION: RefreshSessionState = {
  revoked: false,
  lastUsedAtMs: NOW - 60_000,
  absoluteExpiresAtMs: NOW + 86_400_000,
  subjectSuspended: false,
};

interface Case {
  readonly name: string;
  readonly token?: PresentedRefreshToken;
  readonly family?: Partial<RefreshFamilyState>;
  readonly session?: Partial<RefreshSessionState>;
  readonly presentingClientId?: string;
  readonly nowMs?: number;
  readonly policy?: Partial<RotationPolicy>;
  readonly expected: RotationDecision;
}

const cases: readonly Case[] = [
  { name: 'the family head presented by its client rotates', expected: { kind: 'rotate' } },
  {
    name: 'the head presented by another client is rejected as client_mismatch, not treated as reuse',
    presentingClientId: 'other-app',
    expected: { kind: 'reject', reason: 'client_mismatch' },
  },
  {
    name: 'a rotated token presented by another client is client_mismatch, not reuse',
    token: GRANDPARENT,
    presentingClientId: 'other-app',
    expected: { kind: 'reject', reason: 'client_mismatch' },
  },
  {
    name: 'the head of a revoked family is rejected',
    family: { revoked: true },
    expected: { kind: 'reject', reason: 'revoked' },
  },
  {
    name: 'the head of a revoked session is rejected',
    session: { revoked: true },
    expected: { kind: 'reject', reason: 'revoked' },
  },
  {
    name: 'a rotated token of a revoked family is rejected without a second reuse',
    token: GRANDPARENT,
    family: { revoked: true },
    expected: { kind: 'reject', reason: 'revoked' },
  },
  {
    name: 'the head is rejected while the subject is suspended',
    session: { subjectSuspended: true },
    expected: { kind: 'reject', reason: 'suspended' },
  },
  {
    name: 'the head is rejected at the session absolute expiry',
    session: { absoluteExpiresAtMs: NOW },
    expected: { kind: 'reject', reason: 'session_expired' },
  },
  {
    name: 'the head rotates 1 ms before the session absolute expiry',
    session: { absoluteExpiresAtMs: NOW + 1 },
    expected: { kind: 'rotate' },
  },
  {
    name: 'the head is rejected once the session has been idle for the idle TTL',
    session: { lastUsedAtMs: NOW - IDLE_MS },
    expected: { kind: 'reject', reason: 'idle_expired' },
  },
  {
    name: 'the head rotates 1 ms before the idle TTL runs out',
    session: { lastUsedAtMs: NOW - IDLE_MS + 1 },
    expected: { kind: 'rotate' },
  },
  {
    name: 'the immediate parent presented again within the grace period replays the same successor',
    token: PARENT,
    expected: { kind: 'replay' },
  },
  {
    name: 'the immediate parent presented exactly at the end of the grace period still replays',
    token: PARENT,
    nowMs: NOW - 1000 + GRACE_MS,
    expected: { kind: 'replay' },
  },
  {
    name: 'the immediate parent presented 1 ms after the grace period is reuse',
    token: PARENT,
    nowMs: NOW - 1000 + GRACE_MS + 1,
    expected: { kind: 'reuse' },
  },
  {
    name: 'an older ancestor presented within the grace period is reuse',
    token: GRANDPARENT,
    expected: { kind: 'reuse' },
  },
  {
    name: 'with grace 0, the immediate parent presented at once is reuse',
    token: PARENT,
    nowMs: NOW - 1000,
    policy: { graceMs: 0 },
    expected: { kind: 'reuse' },
  },
  {
    name: 'with grace 0, the head still rotates',
    policy: { graceMs: 0 },
    expected: { kind: 'rotate' },
  },
  {
    name: 'a rotated token without a recorded rotation time is reuse, never replay',
    token: { clientId: 'app', rotatedAtMs: null, successorHash: 'h-head' },
    expected: { kind: 'reuse' },
  },
  {
    name: 'a suspended subject presenting a rotated token is rejected before reuse detection',
    token: GRANDPARENT,
    session: { subjectSuspended: true },
    expected: { kind: 'reject', reason: 'suspended' },
  },
  {
    name: 'a rotated token of an expired session is rejected before reuse detection',
    token: GRANDPARENT,
    session: { absoluteExpiresAtMs: NOW - 1 },
    expected: { kind: 'reject', reason: 'session_expired' },
  },
];

describe('decideRotation', () => {
  for (const c of cases) {
    test(c.name, () => {
      const decision = decideRotation(
        c.token ?? HEAD,
        { ...FAMILY, ...c.family },
        { ...SESSION, ...c.session },
        c.presentingClientId ?? 'app',
        c.nowMs ?? NOW,
        { ...POLICY, ...c.policy },
      );
      assert.deepEqual(decision, c.expected);
    });
  }
});
