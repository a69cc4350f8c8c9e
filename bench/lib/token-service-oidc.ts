/**
 * Child process of `token-service`: `oidc-provider` as a real HTTP server on a loopback port, configured for the
 * same work as revokd (client credentials with JWT access tokens for a resource, rotating refresh tokens,
 * introspection and revocation, `client_secret_basic`). Grants, refresh tokens and opaque tokens live where
 * `argv[6]` says (oidc-adapters.ts): `memory` (nothing durable), `sqlite:<file>` or `postgres:<url>` (every
 * write durable before it returns, as revokd's). oidc-provider ships no durable adapter; these are written the
 * usual way, one statement per adapter call.
 *
 * IPC: sends `{ port }` once listening; answers `{ seed: n }` with `{ refreshTokens }`, n refresh tokens minted
 * directly through the provider's models (oidc-provider issues refresh tokens only through authorization_code, i.e.
 * an interactive login: the seeding stands in for the login and is not timed).
 */
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';
import { type AdapterClass, memoryAdapter, postgresAdapter, sqliteAdapter } from './oidc-adapters.ts';

const API = process.argv[2] ?? 'https://api.example.com';
const OPAQUE_API = process.argv[3] ?? 'https://opaque.example.com';
const CLIENT_ID = process.argv[4] ?? 'bench';
const CLIENT_SECRET = process.argv[5] ?? 'bench-secret';
const SCOPE = 'api:read';

const STORE = process.argv[6] ?? 'memory';

/** `memory`, `sqlite:<file>` or `postgres:<url>` (see oidc-adapters.ts). */
async function adapterFor(spec: string): Promise<AdapterClass> {
  if (spec === 'memory') return memoryAdapter();
  if (spec.startsWith('sqlite:')) return sqliteAdapter(spec.slice('sqlite:'.length));
  if (spec.startsWith('postgres:')) return postgresAdapter(spec.slice('postgres:'.length));
  throw new Error(`unknown oidc-provider store: ${spec}`);
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
  adapter: await adapterFor(STORE),
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
