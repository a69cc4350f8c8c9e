import type { ClientConfig, GrantType } from '../config/schema.ts';
import { OAuthError } from '../core/errors.ts';
import { hashSecret, randomToken, secretMatches } from '../crypto/secrets.ts';
import type { ClientRecord, Store } from '../store/port.ts';

/** A hash that no secret matches, compared against when the client does not exist, so timing reveals nothing. */
const UNKNOWN_CLIENT_HASH = hashSecret(randomToken());

export interface ClientCredentials {
  readonly clientId: string;
  readonly clientSecret: string;
}

/** Authenticates clients (RFC 6749 §2.3) and manages their registration. */
export class ClientService {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  /**
   * Returns the client whose id and secret match, or throws `invalid_client`. The failure does not say whether
   * the id or the secret was wrong.
   */
  async authenticate(credentials: ClientCredentials): Promise<ClientRecord> {
    const client = await this.#store.getClient(credentials.clientId);
    const matches = secretMatches(credentials.clientSecret, client?.secretHash ?? UNKNOWN_CLIENT_HASH);
    if (!client || !matches) throw new OAuthError('invalid_client', 'client authentication failed');
    return client;
  }

  /** Registers (or replaces) a client with a freshly generated secret, returned once and never stored in clear. */
  async register(
    settings: Omit<ClientRecord, 'secretHash'>,
  ): Promise<{ client: ClientRecord; secret: string }> {
    const secret = randomToken();
    const client: ClientRecord = { ...settings, secretHash: hashSecret(secret) };
    await this.#store.saveClient(client);
    return { client, secret };
  }

  /** Creates or updates the clients declared in the configuration. */
  async applyDeclared(clients: readonly ClientConfig[]): Promise<void> {
    for (const c of clients) await this.#store.saveClient(fromConfig(c));
  }
}

export function fromConfig(c: ClientConfig): ClientRecord {
  return {
    id: c.id,
    secretHash: c.secretHash,
    grants: c.grants,
    audiences: c.audiences,
    scopes: c.scopes,
    accessTokenTtlSeconds: c.accessTokenTtlSeconds,
    backchannelLogoutUri: c.backchannelLogoutUri,
    canIntrospect: c.canIntrospect,
    sessionClaims: c.sessionClaims,
  };
}

export function requireGrant(client: ClientRecord, grant: GrantType): void {
  if (!client.grants.includes(grant)) {
    throw new OAuthError('unauthorized_client', `this client may not use the ${grant} grant`);
  }
}
