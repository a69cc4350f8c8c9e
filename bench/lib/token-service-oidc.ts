/**
 * Child process of `token-service`: `oidc-provider` as a real HTTP server on a loopback port, configured for the
 * same work as revokd (client credentials with JWT access tokens for a resource, rotating refresh tokens,
 * introspection and revocation, `client_secret_basic`). Grants, refresh tokens and opaque tokens live in memory,
 * in the small `MapAdapter` below: oidc-provider ships no durable adapter, and its default development adapter is an
 * LRU of 1000 entries, which evicts live grants under this load. Nothing is durable: a generous baseline.
 *
 * IPC: sends `{ port }` once listening; answers `{ seed: n }` with `{ refreshTokens }`, n refresh tokens minted
 * directly through the provider's models (oidc-provider issues refresh tokens only through authorization_code, i.e.
 * an interactive login: the seeding stands in for the login and is not timed).
 */
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const API = process.argv[2] ?? 'https://api.example.com';
const OPAQUE_API = process.argv[3] ?? 'https://opaque.example.com';
const CLIENT_ID = process.argv[4] ?? 'bench';
const CLIENT_SECRET = process.argv[5] ?? 'bench-secret';
const SCOPE = 'api:read';

type Payload = Record<string, unknown> & { grantId?: string; uid?: string; consumed?: number };

const entries = new Map<string, { payload: Payload; expiresAtMs: number }>();
const byGrant = new Map<string, Set<string>>();
const byUid = new Map<string, string>();

/** oidc-provider's adapter interface over process memory, without eviction. */
class MapAdapter {
  readonly model: string;

  constructor(model: string) {
    this.model = model;
  }

  private key(id: string): string {
    return `${this.model}:${id}`;
  }

  async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
    const key = this.key(id);
    entries.set(key, { payload, expiresAtMs: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.grantId) {
      let keys = byGrant.get(payload.grantId);
      if (!keys) {
        keys = new Set();
        byGrant.set(payload.grantId, keys);
      }
      keys.add(key);
    }
    if (payload.uid) byUid.set(payload.uid, id);
  }

  async find(id: string): Promise<Payload | undefined> {
    const entry = entries.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAtMs <= Date.now()) {
      entries.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid: string): Promise<Payload | undefined> {
    const id = byUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(): Promise<undefined> {
    return undefined;
  }

  async consume(id: string): Promise<void> {
    const entry = entries.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    entries.delete(this.key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    for (const key of byGrant.get(grantId) ?? []) entries.delete(key);
    byGrant.delete(grantId);
  }
}

const signingKey = {
  ...generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }),
  alg: 'EdDSA',
  use: 'sig',
  kid: 'bench-ed25519',
};

const provider = new Provider('http://127.0.0.1', {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['https://client.example.com/cb'],
      scope: SCOPE,
      id_token_signed_response_alg: 'EdDSA',
    },
  ],
  adapter: MapAdapter,
  jwks: { keys: [signingKey] },
  scopes: ['openid', 'offline_access', SCOPE],
  rotateRefreshToken: true,
  async findAccount(_ctx: unknown, id: string) {
    return { accountId: id, claims: async () => ({ sub: id }) };
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => API,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx: unknown, resource: string) => ({
        scope: SCOPE,
        audience: resource,
        accessTokenTTL: 300,
        ...(resource === OPAQUE_API
          ? { accessTokenFormat: 'opaque' }
          : { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'EdDSA' } } }),
      }),
    },
  },
});

async function seed(n: number): Promise<string[]> {
  // biome-ignore lint/suspicious/noExplicitAny: oidc-provider's models are untyped here (no @types package).
  const p = provider as any;
  const client = await p.Client.find(CLIENT_ID);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const accountId = `user-${process.pid}-${Date.now()}-${i}`;
    const grant = new p.Grant({ accountId, clientId: CLIENT_ID });
    grant.addResourceScope(API, SCOPE);
    const grantId = await grant.save();
    const refreshToken = new p.RefreshToken({
      accountId,
      client,
      grantId,
      scope: SCOPE,
      resource: API,
      gty: 'authorization_code',
      expiresWithSession: false,
      iiat: Math.floor(Date.now() / 1000),
    });
    out.push(await refreshToken.save());
  }
  return out;
}

const server = provider.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  process.send?.({ port: address.port });
});
server.keepAliveTimeout = 60_000;

process.on('message', (message: { seed?: number }) => {
  if (typeof message.seed === 'number') {
    seed(message.seed).then(
      (refreshTokens) => process.send?.({ refreshTokens }),
      (error: unknown) =>
        process.send?.({
          error: `${(error as { error_description?: string }).error_description ?? ''} ${String((error as Error)?.stack ?? error)}`,
        }),
    );
  }
});
process.on('disconnect', () => process.exit(0));
process.once('SIGTERM', () => process.exit(0));
