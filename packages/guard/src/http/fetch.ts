import { GuardError } from '../errors.ts';

/** The `fetch` the guard uses; Node's global `fetch` unless one is injected (tests, proxies). */
export type FetchFunction = typeof globalThis.fetch;

export interface FetchJsonOptions {
  readonly fetch: FetchFunction;
  readonly timeoutMs: number;
  /** Largest body accepted, in bytes. */
  readonly maxBytes: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Aborts the request (the guard closing). */
  readonly signal?: AbortSignal;
}

/**
 * GETs a JSON document with a timeout and a size bound. Non-2xx answers become `REVOKD_GUARD_UNAUTHORIZED`
 * (401, 403) or `REVOKD_GUARD_HTTP`; a body that is too large or not JSON is `REVOKD_GUARD_PROTOCOL`.
 */
export async function fetchJson(url: string, options: FetchJsonOptions): Promise<unknown> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await options.fetch(url, {
      headers: { accept: 'application/json', ...options.headers },
      signal,
      redirect: 'error',
    });
  } catch (cause) {
    throw new GuardError('REVOKD_GUARD_HTTP', `GET ${url} failed: ${describe(cause)}`, { cause });
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => {});
    throw statusError(url, response.status);
  }
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > options.maxBytes) {
    await response.body?.cancel().catch(() => {});
    throw new GuardError('REVOKD_GUARD_PROTOCOL', `GET ${url}: body larger than ${options.maxBytes} bytes`);
  }
  let text: string;
  try {
    text = await readBounded(response, options.maxBytes);
  } catch (cause) {
    if (cause instanceof GuardError) throw cause;
    throw new GuardError('REVOKD_GUARD_HTTP', `GET ${url}: reading the body failed: ${describe(cause)}`, {
      cause,
    });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new GuardError('REVOKD_GUARD_PROTOCOL', `GET ${url}: body is not JSON`, { cause });
  }
}

export function statusError(url: string, status: number): GuardError {
  return status === 401 || status === 403
    ? new GuardError(
        'REVOKD_GUARD_UNAUTHORIZED',
        `GET ${url}: the server refused the credentials (${status})`,
      )
    : new GuardError('REVOKD_GUARD_HTTP', `GET ${url}: unexpected status ${status}`);
}

async function readBounded(response: Response, maxBytes: number): Promise<string> {
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      await response.body.cancel().catch(() => {});
      throw new GuardError('REVOKD_GUARD_PROTOCOL', `body larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

/**
 * `Authorization: Basic` for client credentials, each part form-urlencoded first (RFC 6749 §2.3.1).
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1
 */
export function basicAuthorization(clientId: string, clientSecret: string): string {
  const encode = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`;
}

/**
 * Checks an endpoint URL: absolute, `https:` — or `http:` to a loopback host (or anywhere when
 * `allowInsecureHttp`), so client credentials and keys never travel in clear text by accident.
 */
export function checkEndpointUrl(value: string, key: string, allowInsecureHttp: boolean): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new GuardError('REVOKD_GUARD_CONFIG', `${key} must be an absolute URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && (allowInsecureHttp || isLoopback(url.hostname))) return url;
  throw new GuardError(
    'REVOKD_GUARD_CONFIG',
    `${key} must use https (http is allowed to loopback hosts, or with allowInsecureHttp)`,
  );
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(hostname);
}

export function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}
