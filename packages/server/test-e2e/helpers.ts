/**
 * Small HTTP helpers for the end-to-end tests: plain `fetch` against a running `revokd serve` process.
 * (Not a test file: the e2e glob only runs `*.test.ts`.)
 */

export const API = 'https://api.example.com';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const SUBJECT_TOKEN_TYPE = 'urn:revokd:params:oauth:token-type:subject';

export interface Credentials {
  readonly client_id: string;
  readonly client_secret: string;
}

export interface TokenResponse {
  readonly access_token: string;
  readonly token_type: string;
  readonly expires_in: number;
  readonly refresh_token?: string;
  readonly scope?: string;
}

export function basic(credentials: Credentials): string {
  const encode = (s: string) => encodeURIComponent(s).replaceAll('%20', '+');
  return `Basic ${Buffer.from(`${encode(credentials.client_id)}:${encode(credentials.client_secret)}`).toString('base64')}`;
}

/** POSTs a form with Basic client authentication. */
export function postForm(
  url: string,
  credentials: Credentials,
  fields: Record<string, string>,
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { authorization: basic(credentials), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
    ...(signal ? { signal } : {}),
  });
}

async function expectJson<T>(response: Response, what: string): Promise<T> {
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${what}: HTTP ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

export async function clientCredentials(
  baseUrl: string,
  credentials: Credentials,
  fields: Record<string, string> = {},
): Promise<TokenResponse> {
  const response = await postForm(`${baseUrl}/token`, credentials, {
    grant_type: 'client_credentials',
    ...fields,
  });
  return expectJson<TokenResponse>(response, 'client_credentials');
}

/** Opens a user session through token exchange (revokd's login for trusted backends). */
export async function login(
  baseUrl: string,
  credentials: Credentials,
  subject: string,
): Promise<TokenResponse> {
  const response = await postForm(`${baseUrl}/token`, credentials, {
    grant_type: TOKEN_EXCHANGE,
    subject_token: subject,
    subject_token_type: SUBJECT_TOKEN_TYPE,
  });
  return expectJson<TokenResponse>(response, `login ${subject}`);
}

/** Tries to log in; returns the HTTP status and the body. */
export async function tryLogin(
  baseUrl: string,
  credentials: Credentials,
  subject: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await postForm(`${baseUrl}/token`, credentials, {
    grant_type: TOKEN_EXCHANGE,
    subject_token: subject,
    subject_token_type: SUBJECT_TOKEN_TYPE,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

export async function introspect(
  baseUrl: string,
  credentials: Credentials,
  token: string,
): Promise<Record<string, unknown>> {
  const response = await postForm(`${baseUrl}/introspect`, credentials, { token });
  return expectJson<Record<string, unknown>>(response, 'introspect');
}

/** The payload of a JWT, unverified (the tests compare it with what the server says). */
export function claimsOf(jwt: string): Record<string, unknown> {
  const payload = jwt.split('.')[1];
  if (payload === undefined) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

export function headerOf(jwt: string): Record<string, unknown> {
  const header = jwt.split('.')[0];
  if (header === undefined) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as Record<string, unknown>;
}

export async function jwksKids(baseUrl: string): Promise<string[]> {
  const response = await fetch(`${baseUrl}/jwks.json`);
  const body = (await response.json()) as { keys: Array<{ kid: string }> };
  return body.keys.map((k) => k.kid);
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns how long it took, or throws. */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  { timeoutMs, intervalMs = 100 }: { timeoutMs: number; intervalMs?: number },
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight; results keep the input order. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
