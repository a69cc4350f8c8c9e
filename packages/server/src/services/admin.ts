import type { LogEntry } from '@revokd/guard';
import type { Clock } from '../core/clock.ts';
import { RevokdError } from '../core/errors.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { AuditQuery, AuditRecord, SessionRecord, Store } from '../store/port.ts';
import type { AuditTrail } from './audit-trail.ts';
import type { RevocationReason, RevocationService } from './revocation.ts';

/** What an operator does: the admin API and the CLI both call these. */
export class AdminService {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #keyring: Keyring;
  readonly #revocation: RevocationService;
  readonly #audit: AuditTrail;

  constructor(deps: {
    store: Store;
    clock: Clock;
    keyring: Keyring;
    revocation: RevocationService;
    audit: AuditTrail;
  }) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#keyring = deps.keyring;
    this.#revocation = deps.revocation;
    this.#audit = deps.audit;
  }

  /** One rule rejects every token the subject holds; its sessions end, so no refresh token works either. */
  revokeSubject(subject: string, reason: RevocationReason, actor: string): Promise<LogEntry[]> {
    return this.#revocation.revoke({ targets: [{ kind: 'subject', sub: subject }], reason, actor });
  }

  async revokeSession(sid: string, reason: RevocationReason, actor: string): Promise<LogEntry[]> {
    const session = await this.#store.getSession(sid);
    if (!session) throw new RevokdError('REVOKD_NOT_FOUND', 'no such session');
    return this.#revocation.revoke({
      targets: [{ kind: 'session', sid }],
      reason,
      actor,
      auditContext: { subject: session.subject, clientId: session.clientId },
    });
  }

  revokeClient(clientId: string, reason: RevocationReason, actor: string): Promise<LogEntry[]> {
    return this.#revocation.revoke({ targets: [{ kind: 'client', clientId }], reason, actor });
  }

  /** Tokens whose claim holds `value` and were issued before now are rejected; sessions carrying it end. */
  revokeClaim(claim: string, value: string, reason: RevocationReason, actor: string): Promise<LogEntry[]> {
    return this.#revocation.revoke({ targets: [{ kind: 'claim', claim, value }], reason, actor });
  }

  revokeAll(reason: RevocationReason, actor: string): Promise<LogEntry[]> {
    return this.#revocation.revoke({ targets: [{ kind: 'global' }], reason, actor });
  }

  /**
   * Signing-key compromise: withdraw the key from the JWKS at once and reject every token issued until now
   * (a forger holding the key can choose any `iat`, so unpublishing the key is what stops forged tokens).
   */
  async compromiseKey(kid: string, actor: string): Promise<LogEntry[]> {
    await this.#keyring.revokeKey(kid, actor);
    return this.revokeAll('key_compromise', actor);
  }

  suspendSubject(subject: string, actor: string): Promise<LogEntry[]> {
    return this.#revocation.suspendSubject(subject, actor);
  }

  reinstateSubject(subject: string, actor: string): Promise<boolean> {
    return this.#store.reinstateSubject(subject, {
      type: 'reinstated',
      atMs: this.#clock.nowMs(),
      actor,
      subject,
    });
  }

  listSessions(subject: string, includeEnded: boolean): Promise<SessionRecord[]> {
    return this.#store.listSessions(subject, { includeEnded, nowMs: this.#clock.nowMs() });
  }

  isSuspended(subject: string): Promise<boolean> {
    return this.#store.isSubjectSuspended(subject);
  }

  /** Reads the audit log, after writing the events this process has recorded so far (see AuditTrail). */
  async readAudit(query: AuditQuery): Promise<AuditRecord[]> {
    await this.#audit.flush();
    return this.#store.readAudit(query);
  }
}
