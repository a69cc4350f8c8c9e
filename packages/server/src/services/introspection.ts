import type { JWTPayload } from 'jose';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { hashSecret } from '../crypto/secrets.ts';
import type { ClientRecord, Store } from '../store/port.ts';
import type { AuditTrail } from './audit-trail.ts';
import { looksLikeJwt, type RevocationService, type TokenTypeHint } from './revocation.ts';
import { ACCESS_TOKEN_TYP } from './tokens.ts';

/** RFC 7662 §2.2 response. An inactive token yields `{ active: false }` and nothing else. */
export type IntrospectionResponse =
  | { readonly active: false }
  | ({ readonly active: true } & Record<string, unknown>);

const INACTIVE: IntrospectionResponse = Object.freeze({ active: false });

/** Claims of an access token returned by introspection (RFC 7662 §2.2 and RFC 9068). */
const RETURNED_CLAIMS = [
  'iss',
  'sub',
  'aud',
  'exp',
  'iat',
  'nbf',
  'jti',
  'client_id',
  'scope',
  'sid',
] as const;

/** RFC 7662 token introspection for authenticated clients. */
export class IntrospectionService {
  readonly #config: Config;
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #clock: Clock;
  readonly #revocation: RevocationService;
  readonly #audit: AuditTrail;

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
  }

  /**
   * A client may introspect tokens issued to it; a client with `canIntrospect` (a resource server) may
   * introspect any. Anything else — revoked, expired, unknown, foreign, or not the caller's — is inactive.
   */
  async introspect(caller: ClientRecord, token: string, hint: TokenTypeHint): Promise<IntrospectionResponse> {
    const asJwt = looksLikeJwt(token) && hint !== 'refresh_token';
    const response = asJwt
      ? ((await this.#accessToken(caller, token)) ?? (await this.#refreshToken(caller, token)))
      : ((await this.#refreshToken(caller, token)) ?? (await this.#accessToken(caller, token)));
    const result = response ?? INACTIVE;
    // Introspection changes no state, so its audit event is written after the answer (see AuditTrail).
    this.#audit.record([
      {
        type: 'introspected',
        atMs: this.#clock.nowMs(),
        actor: caller.id,
        subject: result.active ? (result.sub as string) : undefined,
        clientId: result.active ? (result.client_id as string) : undefined,
        jti: result.active && typeof result.jti === 'string' ? result.jti : undefined,
        detail: { active: result.active },
      },
    ]);
    return result;
  }

  async #accessToken(caller: ClientRecord, token: string): Promise<IntrospectionResponse | undefined> {
    if (!looksLikeJwt(token)) return undefined;
    let payload: JWTPayload;
    try {
      payload = await this.#keyring.verify(token, { issuer: this.#config.issuer, typ: ACCESS_TOKEN_TYP });
    } catch {
      return undefined;
    }
    if (!this.#mayIntrospect(caller, payload.client_id)) return undefined;
    if (this.#revocation.check(payload).revoked) return undefined;
    const response: Record<string, unknown> = { active: true, token_type: 'Bearer' };
    for (const claim of RETURNED_CLAIMS) {
      if (payload[claim] !== undefined) response[claim] = payload[claim];
    }
    return response as IntrospectionResponse;
  }

  async #refreshToken(caller: ClientRecord, token: string): Promise<IntrospectionResponse | undefined> {
    if (token.length > 512) return undefined;
    const found = await this.#store.findRefreshToken(hashSecret(token));
    if (!found) return undefined;
    const { session } = found;
    if (!this.#mayIntrospect(caller, session.clientId)) return undefined;
    const now = this.#clock.nowMs();
    const expiresAtMs = Math.min(
      session.absoluteExpiresAtMs,
      session.lastUsedAtMs + this.#config.tokens.refreshIdleTtlSeconds * 1000,
    );
    const usable =
      !found.rotated &&
      !found.familyRevoked &&
      !found.subjectSuspended &&
      session.endedAtMs === undefined &&
      now < expiresAtMs;
    if (!usable) return undefined;
    return {
      active: true,
      token_type: 'refresh_token',
      iss: this.#config.issuer,
      sub: session.subject,
      aud: session.audience.length === 1 ? session.audience[0] : session.audience,
      client_id: session.clientId,
      scope: session.scope || undefined,
      sid: session.sid,
      iat: Math.floor(found.issuedAtMs / 1000),
      exp: Math.floor(expiresAtMs / 1000),
    };
  }

  #mayIntrospect(caller: ClientRecord, owner: unknown): boolean {
    return caller.canIntrospect || owner === caller.id;
  }
}
