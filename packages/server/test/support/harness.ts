/**
 * In-process test harness: a real runtime on a real SQLite file in a temporary folder, and the real Fastify app
 * driven through `inject` (no sockets, no mocks of our own ports).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { parseConfig } from '../../src/config/load.ts';
import {
  ADMIN_AUDIENCE,
  ADMIN_SCOPE,
  type Config,
  type ConfigInput,
  GRANT_TYPES,
} from '../../src/config/schema.ts';
import type { Clock } from '../../src/core/clock.ts';
import { buildApp } from '../../src/http/app.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import type { ClientRecord } from '../../src/store/port.ts';

export const ISSUER = 'https://revokd.test';
export const API = 'https://api.example.com';

export interface TestClient {
  readonly id: string;
  readonly secret: string;
  /** `Authorization: Basic …` header value. */
  readonly basic: string;
}

export interface TestServer {
  readonly runtime: Runtime;
  readonly app: FastifyInstance;
  readonly config: Config;
  readonly dir: string;
  /** A client with every grant, scopes `read write`, audience API, allowed to set the `roles` session claim. */
  readonly client: TestClient;
  /** A resource server allowed to introspect any token. */
  readonly resourceServer: TestClient;
  /** Registers another client. */
  addClient(id: string, settings?: Partial<Omit<ClientRecord, 'id' | 'secretHash'>>): Promise<TestClient>;
  /** POSTs a form to a path, with optional headers. */
  form(
    path: string,
    fields: Record<string, string | string[]>,
    headers?: Record<string, string>,
  ): Promise<InjectResult>;
  /** Opens a user session through token exchange and returns the token response. */
  login(
    subject: string,
    options?: { client?: TestClient; claims?: Record<string, unknown>; scope?: string },
  ): Promise<TokenPair>;
  /** An admin Bearer token (client credentials for audience urn:revokd:admin, scope revokd:admin). */
  adminToken(): Promise<string>;
  close(): Promise<void>;
}

export interface InjectResult {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | number | undefined>;
  readonly body: string;
  json<T = Record<string, unknown>>(): T;
}

export interface TokenPair {
  readonly access_token: string;
  readonly refresh_token: string;
  readonly expires_in: number;
  readonly scope?: string;
}

export function basicAuth(id: string, secret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

export function encodeForm(fields: Record<string, string | string[]>): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(fields)) {
    for (const v of Array.isArray(value) ? value : [value]) params.append(name, v);
  }
  return params.toString();
}

export async function startTestServer(
  options: { config?: Partial<ConfigInput>; clock?: Clock } = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'revokd-test-'));
  const config = parseConfig({
    issuer: ISSUER,
    store: { kind: 'sqlite', path: join(dir, 'revokd.db') },
    rateLimit: { enabled: false },
    log: { level: 'silent' },
    ...options.config,
  });
  const runtime = await createRuntime(config, { clock: options.clock, follow: true });
  const app = buildApp(runtime, { logger: false });
  await app.ready();

  const addClient: TestServer['addClient'] = async (id, settings = {}) => {
    const { secret } = await runtime.clients.register({
      id,
      grants: Object.values(GRANT_TYPES),
      audiences: [API],
      scopes: ['read', 'write'],
      accessTokenTtlSeconds: undefined,
      backchannelLogoutUri: undefined,
      canIntrospect: false,
      sessionClaims: ['roles'],
      ...settings,
    });
    return { id, secret, basic: basicAuth(id, secret) };
  };

  const form: TestServer['form'] = async (path, fields, headers = {}) => {
    const response = await app.inject({
      method: 'POST',
      url: path,
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      payload: encodeForm(fields),
    });
    return response as unknown as InjectResult;
  };

  const client = await addClient('app');
  const resourceServer = await addClient('api', {
    grants: [GRANT_TYPES.clientCredentials],
    canIntrospect: true,
  });
  const admin = await addClient('ops', {
    grants: [GRANT_TYPES.clientCredentials],
    audiences: [ADMIN_AUDIENCE],
    scopes: [ADMIN_SCOPE],
  });

  return {
    runtime,
    app,
    config,
    dir,
    client,
    resourceServer,
    addClient,
    form,
    async login(subject, opts = {}) {
      const c = opts.client ?? client;
      const response = await form(
        '/token',
        {
          grant_type: GRANT_TYPES.tokenExchange,
          subject_token: subject,
          subject_token_type: 'urn:revokd:params:oauth:token-type:subject',
          ...(opts.claims ? { claims: JSON.stringify(opts.claims) } : {}),
          ...(opts.scope ? { scope: opts.scope } : {}),
        },
        { authorization: c.basic },
      );
      if (response.statusCode !== 200)
        throw new Error(`login failed: ${response.statusCode} ${response.body}`);
      return response.json<TokenPair>();
    },
    async adminToken() {
      const response = await form(
        '/token',
        { grant_type: 'client_credentials' },
        { authorization: admin.basic },
      );
      if (response.statusCode !== 200) throw new Error(`admin token failed: ${response.body}`);
      return response.json<{ access_token: string }>().access_token;
    },
    async close() {
      await app.close();
      await runtime.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
