import type { AllowRule, LogEntry, Rule } from '@revokd/guard';
import type { GrantType, SigningAlgorithm } from '../config/schema.ts';
import type { RejectReason, RotationPolicy } from '../core/refresh-rotation.ts';

/**
 * The storage port: narrow, domain-named operations, each atomic in its backend. Every write resolves only once
 * it is durable; a backend that cannot make it durable rejects with `REVOKD_STORE_UNAVAILABLE` and writes nothing.
 */
export interface Store {
  // --- clients ---
  getClient(id: string): Promise<ClientRecord | undefined>;
  listClients(): Promise<ClientRecord[]>;
  /** Creates or replaces a client. */
  saveClient(client: ClientRecord): Promise<void>;
  /** Returns false when no such client exists. */
  deleteClient(id: string): Promise<boolean>;

  // --- signing keys and server secrets ---
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Creates these keys, or updates the state and publication end of existing ones, together (a rotation changes
   * two at once), and records the audit events.
   */
  saveSigningKeys(keys: readonly SigningKeyRecord[], audit: readonly AuditEvent[]): Promise<void>;
  /** Returns the named secret, creating it with `create()` on first use; concurrent first uses agree on one value. */
  getOrCreateSecret(name: string, create: () => string): Promise<string>;

  // --- sessions and refresh tokens ---
  /** Opens a user session with its first refresh-token family and token. Fails if the subject is suspended. */
  openSession(input: OpenSessionInput): Promise<OpenSessionOutcome>;
  /** Rotates a refresh token as one atomic step; see {@link RotateInput}. */
  rotateRefreshToken(input: RotateInput): Promise<RotateOutcome>;
  /** Looks a refresh token up by hash, with the state of its family and session (for revocation, introspection). */
  findRefreshToken(hash: string): Promise<RefreshTokenView | undefined>;
  getSession(sid: string): Promise<SessionRecord | undefined>;
  listSessions(subject: string, options: { includeEnded: boolean; nowMs: number }): Promise<SessionRecord[]>;
  isSubjectSuspended(subject: string): Promise<boolean>;
  /** Clears a subject's suspension. Returns false when it was not suspended. */
  reinstateSubject(subject: string, audit: AuditEvent): Promise<boolean>;

  // --- revocation log ---
  /**
   * Appends the rules, applies the state effects and records the audit events in one durable transaction, and
   * returns the rules at their log positions. The backend's log listener sees them before this resolves.
   * Also used, with no effects, to append the `allow` entry of a token issued without a session write.
   */
  revoke(request: RevocationRequest): Promise<LogEntry[]>;
  /** Log entries after `afterCursor`, in order, at most `limit`. Pruned (expired) rules are absent. */
  readLog(afterCursor: number, limit: number): Promise<LogEntry[]>;
  /** Every rule not expired at `nowMs`, and the cursor of the last entry the set reflects. */
  snapshot(nowMs: number): Promise<Snapshot>;
  /** Deletes rules expired at `nowMs`, and sessions and tokens past retention. Returns how many rules went. */
  prune(nowMs: number): Promise<number>;

  // --- back-channel logout outbox ---
  /**
   * Claims up to `limit` logout deliveries due at `nowMs` (oldest due first), as one atomic step: each claimed
   * delivery's `attempts` goes up by one and it is not due again before `nowMs + leaseMs`, so concurrent
   * dispatchers (other nodes) never claim the same one, and one whose dispatcher died is claimed again after the
   * lease. Deliveries are written by {@link Store.revoke} (and by reuse in {@link Store.rotateRefreshToken}): one
   * per session the write ends whose client has a `backchannelLogoutUri`, in the same transaction.
   */
  claimLogoutDeliveries(nowMs: number, limit: number, leaseMs: number): Promise<LogoutDelivery[]>;
  /**
   * Settles a claimed delivery: `delivered` and `failed` remove it and record their audit events, `retry` makes
   * it due again at `nextAttemptAtMs`. Conditional on `claim.attempts` being its current count, so a claim that
   * lost its lease to another dispatcher changes nothing; returns whether it applied.
   */
  completeLogoutDelivery(
    claim: Pick<LogoutDelivery, 'id' | 'attempts'>,
    outcome: LogoutDeliveryOutcome,
  ): Promise<boolean>;

  // --- audit ---
  /**
   * Records audit events that no request waits on (the audit trail writes them after the answers they record); like
   * every write, resolves once durable.
   */
  appendAudit(events: readonly AuditEvent[]): Promise<void>;
  readAudit(query: AuditQuery): Promise<AuditRecord[]>;

  close(): Promise<void>;
}

export interface ClientRecord {
  readonly id: string;
  /** `sha256:` + base64url digest. */
  readonly secretHash: string;
  readonly grants: readonly GrantType[];
  readonly audiences: readonly string[];
  readonly scopes: readonly string[];
  readonly accessTokenTtlSeconds: number | undefined;
  readonly backchannelLogoutUri: string | undefined;
  readonly canIntrospect: boolean;
  readonly sessionClaims: readonly string[];
}

export type SigningKeyState = 'active' | 'retired' | 'revoked';

export interface SigningKeyRecord {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateJwk: Readonly<Record<string, unknown>>;
  readonly publicJwk: Readonly<Record<string, unknown>>;
  /** `active`: signs new tokens (exactly one); `retired`: published until `publishUntilMs`; `revoked`: never published. */
  readonly state: SigningKeyState;
  readonly createdAtMs: number;
  readonly publishUntilMs: number | undefined;
}

export interface SessionRecord {
  readonly sid: string;
  readonly subject: string;
  readonly clientId: string;
  readonly scope: string;
  readonly audience: readonly string[];
  /** Claims the trusted backend set on the session, copied into every access token of the session. */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly createdAtMs: number;
  readonly lastUsedAtMs: number;
  readonly absoluteExpiresAtMs: number;
  readonly endedAtMs: number | undefined;
  readonly endReason: string | undefined;
}

export interface OpenSessionInput {
  readonly session: Omit<SessionRecord, 'endedAtMs' | 'endReason'>;
  readonly familyId: string;
  readonly refreshTokenHash: string;
  readonly audit: readonly AuditEvent[];
  /**
   * Allowlist mode: the `allow` entry of the access token issued with the session, appended to the log in the
   * same transaction when the session opens (not when the subject is suspended).
   */
  readonly allow?: AllowRule | undefined;
}

export type OpenSessionOutcome =
  /** `allowed`: the `allow` entry at its log position, when one was given. */
  { readonly kind: 'opened'; readonly allowed?: LogEntry } | { readonly kind: 'suspended' };

export interface RotateInput {
  readonly presentedHash: string;
  /** Hash of the successor; deterministic per presented token so a grace-period replay yields the same one. */
  readonly successorHash: string;
  readonly clientId: string;
  readonly nowMs: number;
  readonly policy: RotationPolicy;
  /** Builds the rules written when reuse is detected (family and session), in the same transaction. */
  readonly reuseRules: (ids: { sid: string; fid: string }) => Rule[];
  /** Audit events to record for each outcome, in the same transaction. */
  readonly audit: (outcome: RotateOutcome) => AuditEvent[];
  /**
   * Allowlist mode: the `allow` entry of the access token the rotation authorises, appended to the log in the
   * same transaction when the outcome is `rotated` or `replayed` (and only then).
   */
  readonly allow?: AllowRule | undefined;
}

/** `allowed` (on `rotated` and `replayed`): the `allow` entry at its log position, when one was given. */
export type RotateOutcome =
  | {
      readonly kind: 'rotated';
      readonly session: SessionRecord;
      readonly fid: string;
      readonly allowed?: LogEntry;
    }
  | {
      readonly kind: 'replayed';
      readonly session: SessionRecord;
      readonly fid: string;
      readonly allowed?: LogEntry;
    }
  | {
      readonly kind: 'reuse';
      readonly session: SessionRecord;
      readonly fid: string;
      readonly entries: LogEntry[];
    }
  | { readonly kind: 'rejected'; readonly reason: RejectReason | 'unknown' };

export interface RefreshTokenView {
  readonly fid: string;
  readonly session: SessionRecord;
  readonly issuedAtMs: number;
  readonly rotated: boolean;
  readonly familyRevoked: boolean;
  readonly subjectSuspended: boolean;
}

/** Durable state changes that accompany rules: they stop refresh tokens from minting new access tokens. */
export type RevocationEffect =
  | { readonly kind: 'end-session'; readonly sid: string }
  | { readonly kind: 'end-family'; readonly fid: string }
  | { readonly kind: 'end-subject-sessions'; readonly subject: string }
  | { readonly kind: 'end-client-sessions'; readonly clientId: string }
  | { readonly kind: 'end-claim-sessions'; readonly claim: string; readonly value: string }
  | { readonly kind: 'end-all-sessions' }
  | { readonly kind: 'suspend-subject'; readonly subject: string };

export interface RevocationRequest {
  readonly rules: readonly Rule[];
  readonly effects: readonly RevocationEffect[];
  readonly reason: string;
  readonly nowMs: number;
  readonly audit: readonly AuditEvent[];
}

/** One logout token to send: session `sid` of `subject` ended, and `clientId` had tokens in it. */
export interface LogoutDelivery {
  /** Positive, unique per delivery. */
  readonly id: number;
  readonly sid: string;
  readonly subject: string;
  readonly clientId: string;
  /** The client's `backchannelLogoutUri` when the session ended. */
  readonly uri: string;
  /** The revocation reason that ended the session. */
  readonly reason: string;
  /** When the session ended (the outbox row was written). */
  readonly createdAtMs: number;
  /** Attempts so far, counting the one this claim starts. */
  readonly attempts: number;
  /** Why the previous attempt failed (a status or error code; never a token). */
  readonly lastError: string | undefined;
}

export type LogoutDeliveryOutcome =
  | { readonly kind: 'delivered'; readonly audit: readonly AuditEvent[] }
  | { readonly kind: 'retry'; readonly nextAttemptAtMs: number; readonly error: string }
  | { readonly kind: 'failed'; readonly audit: readonly AuditEvent[] };

export interface Snapshot {
  readonly cursor: number;
  readonly rules: Rule[];
}

export type AuditEventType =
  | 'issued'
  | 'refreshed'
  | 'revoked'
  | 'reuse_detected'
  | 'introspected'
  | 'suspended'
  | 'reinstated'
  | 'session_opened'
  | 'key_created'
  | 'key_rotated'
  | 'key_revoked'
  | 'client_saved'
  | 'client_deleted'
  | 'logout_delivered'
  | 'logout_failed';

export interface AuditEvent {
  readonly type: AuditEventType;
  readonly atMs: number;
  /** Who did it: a client id, `admin:<client>`, `cli`, or `system`. */
  readonly actor: string;
  readonly subject?: string | undefined;
  readonly clientId?: string | undefined;
  readonly sid?: string | undefined;
  readonly jti?: string | undefined;
  readonly reason?: string | undefined;
  /** Small structured context; never a token or secret. */
  readonly detail?: Readonly<Record<string, unknown>> | undefined;
}

export interface AuditRecord extends AuditEvent {
  readonly id: number;
}

export interface AuditQuery {
  readonly subject?: string | undefined;
  readonly clientId?: string | undefined;
  readonly sid?: string | undefined;
  readonly type?: AuditEventType | undefined;
  /** Only records with a greater id (for paging). */
  readonly afterId?: number | undefined;
  readonly limit: number;
}
