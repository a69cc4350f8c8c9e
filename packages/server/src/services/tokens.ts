import { randomUUID } from 'node:crypto';
import { type AllowRule, FAMILY_CLAIM, ISSUED_AT_US_CLAIM, type LogEntry } from '@revokd/guard';
import { type Config, GRANT_TYPES } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { OAuthError } from '../core/errors.ts';
import type { RotationPolicy } from '../core/refresh-rotation.ts';
import { allowRuleFor } from '../core/rule-policy.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { deriveSuccessorToken, hashSecret, randomId, randomToken } from '../crypto/secrets.ts';
import type { AuditEvent, ClientRecord, RotateOutcome, SessionRecord, Store } from '../store/port.ts';
import type { AuditTrail } from './audit-trail.ts';
import { requireGrant } from './clients.ts';
import type { RevocationService } from './revocation.ts';

/** RFC 9068 §2.1: the `typ` header of a JWT access token. */
export const ACCESS_TOKEN_TYP = 'at+jwt';

/** RFC 8693 token type a trusted backend uses to name a user it has authenticated (documented in docs/api.md). */
export const SUBJECT_TOKEN_TYPE = 'urn:revokd:params:oauth:token-type:subject';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** Claims a trusted backend may never set on a session: they are revokd's to decide. */
const RESERVED_CLAIMS = new Set([
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  'client_id',
  'scope',
  'sid',
  'cnf',
  'act',
  ISSUED_AT_US_CLAIM,
  FAMILY_CLAIM,
]);

const ROTATION_KEY_SECRET = 'refresh-rotation-key';

export interface TokenResponse {
  readonly access_token: string;
  readonly token_type: 'Bearer';
  readonly expires_in: number;
  readonly scope?: string;
  readonly refresh_token?: string;
  readonly issued_token_type?: string;
}

export interface GrantRequest {
  /** Requested scopes (space-separated string split), or undefined for the client's (or session's) default. */
  readonly scope: readonly string[] | undefined;
  /** Requested audiences (RFC 8707 `resource` / RFC 8693 `audience`), or empty for the client's default. */
  readonly audiences: readonly string[];
}

export interface TokenExchangeRequest extends GrantRequest {
  readonly subjectToken: string;
  readonly subjectTokenType: string;
  readonly requestedTokenType: string | undefined;
  /** Session claims, already parsed from JSON; validated against the client's `sessionClaims`. */
  readonly claims: Readonly<Record<string, unknown>>;
}

interface TokenStamp {
  readonly issuedAtUs: number;
  readonly jti: string;
}

interface AccessTokenInput {
  readonly client: ClientRecord;
  readonly subject: string;
  readonly scope: string;
  readonly audience: readonly string[];
  readonly session?: {
    readonly sid: string;
    readonly fid: string;
    readonly claims: Readonly<Record<string, unknown>>;
  };
  /** Identity and issuance instant (µs), fixed before the store write that authorises the token. */
  readonly stamp: TokenStamp;
}

/** Issues access tokens (RFC 9068) and refresh tokens, and rotates refresh tokens (RFC 9700 §4.14.2). */
export class TokenService {
  readonly #config: Config;
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #clock: Clock;
  readonly #revocation: RevocationService;
  readonly #audit: AuditTrail;
  readonly #rotationPolicy: RotationPolicy;
  #rotationKey: string | undefined;

  constructor(deps: {
    config: Config;
    store: Store;
    keyring: Keyring;
    clock: Clock;
    revocation: RevocationService;
    audit: AuditTrail;
  }) {
    this.#config = deps.config;
    this.#store = deps.store;
    this.#keyring = deps.keyring;
    this.#clock = deps.clock;
    this.#revocation = deps.revocation;
    this.#audit = deps.audit;
    this.#rotationPolicy = {
      graceMs: deps.config.tokens.refreshReuseGraceSeconds * 1000,
      idleTtlMs: deps.config.tokens.refreshIdleTtlSeconds * 1000,
    };
  }

  async init(): Promise<void> {
    this.#rotationKey = await this.#store.getOrCreateSecret(ROTATION_KEY_SECRET, randomToken);
  }

  /** RFC 6749 §4.4: a client obtains a token for itself. */
  async clientCredentials(client: ClientRecord, request: GrantRequest): Promise<TokenResponse> {
    requireGrant(client, GRANT_TYPES.clientCredentials);
    const scope = grantScope(client.scopes, request.scope);
    const audience = grantAudience(client, request.audiences);
    const stamp = this.#stamp();
    const issued = await this.#accessToken({ client, subject: client.id, scope, audience, stamp });
    const audit = [this.#issuedEvent(client, client.id, issued.jti, GRANT_TYPES.clientCredentials)];
    const allow = this.#allowRule(client, stamp);
    if (allow === undefined) {
      // Issuance changes no state, so its audit event is written after the answer (see AuditTrail).
      this.#audit.record(audit);
    } else {
      // Allowlist mode: the token is recorded durably (with its audit, in one write) before it is returned.
      const entries = await this.#store.revoke({
        rules: [allow],
        effects: [],
        reason: 'issued',
        nowMs: this.#clock.nowMs(),
        audit,
      });
      await this.#allowed(entries[0]);
    }
    return this.#response(issued, scope);
  }

  /**
   * RFC 8693 token exchange, used by a trusted backend that has authenticated a user: it opens a user session
   * and returns an access token and the session's first refresh token.
   */
  async openSession(client: ClientRecord, request: TokenExchangeRequest): Promise<TokenResponse> {
    requireGrant(client, GRANT_TYPES.tokenExchange);
    if (request.subjectTokenType !== SUBJECT_TOKEN_TYPE) {
      throw new OAuthError('invalid_request', `subject_token_type must be ${SUBJECT_TOKEN_TYPE}`);
    }
    // The answer's primary token is always an access token (a refresh token comes with it).
    if (request.requestedTokenType !== undefined && request.requestedTokenType !== ACCESS_TOKEN_TYPE) {
      throw new OAuthError('invalid_request', `requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
    }
    const subject = request.subjectToken;
    if (!/^[\x21-\x7E]{1,255}$/.test(subject)) {
      throw new OAuthError('invalid_request', 'subject_token must be 1-255 printable ASCII characters');
    }
    const claims = sessionClaims(client, request.claims);
    const scope = grantScope(client.scopes, request.scope);
    const audience = grantAudience(client, request.audiences);
    const now = this.#clock.nowMs();
    const { tokens } = this.#config;
    const session: SessionRecord = {
      sid: randomId(),
      subject,
      clientId: client.id,
      scope,
      audience,
      claims,
      createdAtMs: now,
      lastUsedAtMs: now,
      absoluteExpiresAtMs: now + tokens.refreshAbsoluteTtlSeconds * 1000,
      endedAtMs: undefined,
      endReason: undefined,
    };
    const fid = randomId();
    const refreshToken = randomToken();
    // The issuance instant is taken right before the session write is queued, and the token is signed only after
    // it commits. A revocation takes its not-before instant right before its own write is queued, so commit
    // order matches timestamp order: a revocation queued first cannot end this session, and its rule does not
    // reject this token; one queued after ends the session and rejects the token.
    const stamp = this.#stamp();
    const outcome = await this.#store.openSession({
      session,
      familyId: fid,
      refreshTokenHash: hashSecret(refreshToken),
      allow: this.#allowRule(client, stamp),
      audit: [
        {
          type: 'session_opened',
          atMs: now,
          actor: client.id,
          subject,
          clientId: client.id,
          sid: session.sid,
        },
        { ...this.#issuedEvent(client, subject, stamp.jti, GRANT_TYPES.tokenExchange), sid: session.sid },
      ],
    });
    if (outcome.kind === 'suspended') throw new OAuthError('invalid_grant', 'the subject is suspended');
    await this.#allowed(outcome.allowed);
    const issued = await this.#accessToken({
      client,
      subject,
      scope,
      audience,
      session: { sid: session.sid, fid, claims },
      stamp,
    });
    return {
      ...this.#response(issued, scope),
      refresh_token: refreshToken,
      issued_token_type: ACCESS_TOKEN_TYPE,
    };
  }

  /** RFC 6749 §6 with rotation: the presented refresh token is exchanged for a new one and an access token. */
  async refresh(client: ClientRecord, refreshToken: string, requestedScope: readonly string[] | undefined) {
    requireGrant(client, GRANT_TYPES.refreshToken);
    const rotationKey = this.#rotationKey;
    if (rotationKey === undefined) throw new Error('TokenService.init() was not called');
    // A request for a wider scope must fail before rotation commits: otherwise the rejected request consumes the
    // token and the client's next use of it counts as reuse. (A session's scope never changes.)
    if (requestedScope !== undefined) {
      const found = await this.#store.findRefreshToken(hashSecret(refreshToken));
      if (found && !found.rotated && found.session.clientId === client.id) {
        grantScope(found.session.scope.split(' ').filter(Boolean), requestedScope);
      }
    }
    const successor = deriveSuccessorToken(refreshToken, rotationKey);
    const now = this.#clock.nowMs();
    // The access token's issuance instant is taken right before the rotation is queued (no await in between),
    // as a revocation takes its not-before instant right before it is queued: if the rotation commits first, the
    // token it authorises is older than the revocation's rule and rejected by it; if the revocation commits
    // first, the rotation sees the ended session. Either way a racing revocation is never undone.
    const stamp = this.#stamp();
    const outcome = await this.#store.rotateRefreshToken({
      presentedHash: hashSecret(refreshToken),
      successorHash: hashSecret(successor),
      clientId: client.id,
      nowMs: now,
      policy: this.#rotationPolicy,
      reuseRules: ({ sid, fid }) => [
        this.#revocation.ruleFor({ kind: 'family', fid }),
        this.#revocation.ruleFor({ kind: 'session', sid }),
      ],
      audit: (o) => rotationAudit(o, client.id, now),
      allow: this.#allowRule(client, stamp),
    });
    if (outcome.kind === 'reuse') {
      throw new OAuthError('invalid_grant', 'refresh token was already used; the session has been revoked');
    }
    if (outcome.kind === 'rejected') throw new OAuthError('invalid_grant', rejectionText(outcome.reason));
    const { session, fid } = outcome;
    await this.#allowed(outcome.allowed);
    // RFC 6749 §6: a refresh may narrow the scope, never widen it.
    const scope = grantScope(session.scope.split(' ').filter(Boolean), requestedScope);
    const issued = await this.#accessToken({
      client,
      subject: session.subject,
      scope,
      audience: session.audience,
      session: { sid: session.sid, fid, claims: session.claims },
      stamp,
    });
    return { ...this.#response(issued, scope), refresh_token: successor };
  }

  /** The token's lifetime in seconds: never beyond the configured maximum, which not-before rules rely on. */
  #ttlSeconds(client: ClientRecord): number {
    // A client may predate a lower maximum.
    return Math.min(
      client.accessTokenTtlSeconds ?? this.#config.tokens.accessTokenTtlSeconds,
      this.#config.tokens.maxAccessTokenTtlSeconds,
    );
  }

  /** Allowlist mode: the `allow` entry of the token `stamp` identifies; undefined otherwise. */
  #allowRule(client: ClientRecord, stamp: TokenStamp): AllowRule | undefined {
    const { tokens } = this.#config;
    if (!tokens.allowlist) return undefined;
    const expSeconds = Math.floor(stamp.issuedAtUs / 1_000_000) + this.#ttlSeconds(client);
    return allowRuleFor(stamp.jti, expSeconds * 1000, tokens.clockSkewSeconds * 1000);
  }

  /**
   * Waits until this process's index holds the `allow` entry just committed (normally it already does: the
   * store publishes before answering), so the token introspects active here as soon as it is returned.
   */
  async #allowed(entry: LogEntry | undefined): Promise<void> {
    if (entry !== undefined) await this.#revocation.waitFor(entry.cursor);
  }

  async #accessToken(input: AccessTokenInput): Promise<{ token: string; jti: string; expiresIn: number }> {
    const ttl = this.#ttlSeconds(input.client);
    const { issuedAtUs, jti } = input.stamp;
    const iat = Math.floor(issuedAtUs / 1_000_000);
    const payload: Record<string, unknown> = {
      ...input.session?.claims,
      iss: this.#config.issuer,
      sub: input.subject,
      aud: input.audience.length === 1 ? input.audience[0] : [...input.audience],
      exp: iat + ttl,
      iat,
      [ISSUED_AT_US_CLAIM]: issuedAtUs,
      jti,
      client_id: input.client.id,
    };
    if (input.scope) payload.scope = input.scope;
    if (input.session) {
      payload.sid = input.session.sid;
      payload[FAMILY_CLAIM] = input.session.fid;
    }
    return { token: await this.#keyring.sign(payload, ACCESS_TOKEN_TYP), jti, expiresIn: ttl };
  }

  #stamp(): TokenStamp {
    return { issuedAtUs: this.#clock.nowUs(), jti: randomUUID() };
  }

  #response(issued: { token: string; expiresIn: number }, scope: string): TokenResponse {
    return {
      access_token: issued.token,
      token_type: 'Bearer',
      expires_in: issued.expiresIn,
      ...(scope ? { scope } : {}),
    };
  }

  #issuedEvent(client: ClientRecord, subject: string, jti: string, grant: string): AuditEvent {
    return {
      type: 'issued',
      atMs: this.#clock.nowMs(),
      actor: client.id,
      subject,
      clientId: client.id,
      jti,
      detail: { grant },
    };
  }
}

/** The granted scope: what was requested if the client may have all of it, else `invalid_scope`. */
export function grantScope(allowed: readonly string[], requested: readonly string[] | undefined): string {
  if (requested === undefined) return allowed.join(' ');
  const unknown = requested.filter((s) => !allowed.includes(s));
  if (unknown.length > 0) throw new OAuthError('invalid_scope', `scope not allowed: ${unknown.join(' ')}`);
  return [...new Set(requested)].join(' ');
}

function grantAudience(client: ClientRecord, requested: readonly string[]): string[] {
  if (requested.length === 0) return [client.audiences[0]!];
  const unknown = requested.filter((a) => !client.audiences.includes(a));
  if (unknown.length > 0)
    throw new OAuthError('invalid_target', 'this client may not obtain tokens for that audience');
  return [...new Set(requested)];
}

function sessionClaims(
  client: ClientRecord,
  claims: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(claims)) {
    if (RESERVED_CLAIMS.has(name) || !client.sessionClaims.includes(name)) {
      throw new OAuthError(
        'invalid_request',
        `claim ${JSON.stringify(name).slice(0, 80)} may not be set by this client`,
      );
    }
    const ok =
      typeof value === 'string' ||
      typeof value === 'boolean' ||
      (typeof value === 'number' && Number.isFinite(value)) ||
      (Array.isArray(value) && value.every((v) => typeof v === 'string'));
    if (!ok)
      throw new OAuthError(
        'invalid_request',
        `claim ${name} must be a string, number, boolean or string array`,
      );
    result[name] = value;
  }
  return result;
}

function rejectionText(reason: string): string {
  switch (reason) {
    case 'suspended':
      return 'the subject is suspended';
    case 'session_expired':
      return 'the session has reached its absolute lifetime';
    case 'idle_expired':
      return 'the session has been idle too long';
    default:
      return 'refresh token is invalid, expired or revoked';
  }
}

function rotationAudit(outcome: RotateOutcome, clientId: string, atMs: number): AuditEvent[] {
  if (outcome.kind === 'rejected') return [];
  const base = {
    atMs,
    actor: clientId,
    subject: outcome.session.subject,
    clientId,
    sid: outcome.session.sid,
  };
  switch (outcome.kind) {
    case 'rotated':
      return [{ ...base, type: 'refreshed', detail: { fid: outcome.fid } }];
    case 'replayed':
      return [{ ...base, type: 'refreshed', detail: { fid: outcome.fid, replay: true } }];
    case 'reuse':
      return [
        { ...base, type: 'reuse_detected', detail: { fid: outcome.fid } },
        {
          ...base,
          type: 'revoked',
          reason: 'refresh_token_reuse',
          detail: { fid: outcome.fid, kinds: ['family', 'session'] },
        },
      ];
  }
}
