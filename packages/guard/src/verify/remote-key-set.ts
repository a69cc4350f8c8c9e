import { GuardError } from '../errors.ts';
import { emit } from '../events.ts';
import { checkEndpointUrl, describe, type FetchFunction, fetchJson } from '../http/fetch.ts';
import { type GuardAlgorithm, type KeyResolver, KeySet } from './key-set.ts';

/** RFC 8414 §3: the well-known suffix of authorization server metadata. */
export const METADATA_SUFFIX = '/.well-known/oauth-authorization-server';

export interface RemoteKeySetOptions {
  /** The JWKS URL, or how to find it (from the server's metadata); resolved once, on the first refresh. */
  readonly jwksUri: string | (() => Promise<string>);
  readonly algorithms: readonly GuardAlgorithm[];
  readonly fetch: FetchFunction;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /** An unknown `kid` triggers a refresh at most this often, in milliseconds. Default 30000. */
  readonly minRefreshIntervalMs?: number;
  /** Per request, in milliseconds. Default 10000. */
  readonly timeoutMs?: number;
  /** Largest JWKS accepted, in bytes. Default 1 MiB. */
  readonly maxBytes?: number;
  /** Called after a refresh changed the set (a kid appeared or disappeared). */
  readonly onChange?: (keys: KeySet) => void;
}

/**
 * The server's published keys, fetched from its `jwks_uri` and imported once. A token naming an unknown `kid`
 * asks for a refresh ({@link RemoteKeySet.requestRefresh}), which happens at most once per
 * `minRefreshIntervalMs` whatever the number of such tokens, and never blocks the caller.
 */
export class RemoteKeySet implements KeyResolver {
  readonly #options: RemoteKeySetOptions;
  readonly #minRefreshIntervalMs: number;
  #jwksUri: string | undefined;
  #current = KeySet.EMPTY;
  #loaded = false;
  #lastAttemptMs = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<void> | undefined;
  #closed = new AbortController();

  constructor(options: RemoteKeySetOptions) {
    this.#options = options;
    this.#minRefreshIntervalMs = options.minRefreshIntervalMs ?? 30_000;
    if (typeof options.jwksUri === 'string') this.#jwksUri = options.jwksUri;
  }

  lookup(kid: string) {
    return this.#current.lookup(kid);
  }

  /** True once a key set has been fetched. */
  get loaded(): boolean {
    return this.#loaded;
  }

  get current(): KeySet {
    return this.#current;
  }

  /** Fetches the key set now (sharing a refresh already under way). Rejects with a {@link GuardError}. */
  refresh(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    this.#lastAttemptMs = this.#options.now();
    this.#inFlight = this.#fetch().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /**
   * Asks for a refresh without waiting for it. Ignored while one is under way or when the last one started
   * less than `minRefreshIntervalMs` ago. Failures are published as events, never thrown.
   */
  requestRefresh(): void {
    if (this.#inFlight || this.#options.now() - this.#lastAttemptMs < this.#minRefreshIntervalMs) return;
    this.refresh().catch(() => {});
  }

  close(): void {
    this.#closed.abort();
  }

  async #fetch(): Promise<void> {
    try {
      if (this.#jwksUri === undefined) {
        const resolve = this.#options.jwksUri as () => Promise<string>;
        this.#jwksUri = await resolve();
      }
      const document = await fetchJson(this.#jwksUri, {
        fetch: this.#options.fetch,
        timeoutMs: this.#options.timeoutMs ?? 10_000,
        maxBytes: this.#options.maxBytes ?? 1 << 20,
        signal: this.#closed.signal,
        headers: { accept: 'application/jwk-set+json, application/json' },
      });
      let next: KeySet;
      try {
        next = await KeySet.fromJwks(document, this.#options.algorithms);
      } catch (cause) {
        throw new GuardError('REVOKD_GUARD_PROTOCOL', `${this.#jwksUri}: ${describe(cause)}`, { cause });
      }
      const changed = !sameKids(this.#current, next);
      this.#current = next;
      this.#loaded = true;
      if (changed) {
        emit(() => ({ type: 'keys', kids: next.kids }));
        this.#options.onChange?.(next);
      }
    } catch (error) {
      const guardError =
        error instanceof GuardError
          ? error
          : new GuardError('REVOKD_GUARD_HTTP', describe(error), { cause: error });
      emit(() => ({ type: 'error', during: 'keys', code: guardError.code, message: guardError.message }));
      throw guardError;
    }
  }
}

function sameKids(a: KeySet, b: KeySet): boolean {
  if (a.size !== b.size) return false;
  const kids = new Set(a.kids);
  return b.kids.every((kid) => kids.has(kid));
}

/**
 * The RFC 8414 metadata URL of a server: the well-known suffix goes between the host and any path
 * (`https://as.example/tenant` → `https://as.example/.well-known/oauth-authorization-server/tenant`).
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3
 */
export function metadataUrl(serverUrl: string): string {
  const url = new URL(serverUrl);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}${METADATA_SUFFIX}${path}`;
}

/**
 * Reads the server's metadata and returns its `jwks_uri`, after checking that the metadata's `issuer` is
 * exactly the expected issuer (RFC 8414 §3.3) and that the URI is acceptable.
 */
export async function discoverJwksUri(options: {
  readonly issuer: string;
  readonly serverUrl: string;
  readonly fetch: FetchFunction;
  readonly timeoutMs: number;
  readonly allowInsecureHttp: boolean;
  readonly signal?: AbortSignal;
}): Promise<string> {
  const url = metadataUrl(options.serverUrl);
  const metadata = (await fetchJson(url, {
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
    maxBytes: 1 << 20,
    ...(options.signal ? { signal: options.signal } : {}),
  })) as Record<string, unknown> | null;
  if (typeof metadata !== 'object' || metadata === null) {
    throw new GuardError('REVOKD_GUARD_PROTOCOL', `${url}: metadata is not a JSON object`);
  }
  if (metadata.issuer !== options.issuer) {
    throw new GuardError(
      'REVOKD_GUARD_PROTOCOL',
      `${url}: metadata issuer does not match the configured issuer`,
    );
  }
  if (typeof metadata.jwks_uri !== 'string') {
    throw new GuardError('REVOKD_GUARD_PROTOCOL', `${url}: metadata has no jwks_uri`);
  }
  try {
    return checkEndpointUrl(metadata.jwks_uri, 'jwks_uri', options.allowInsecureHttp).href;
  } catch (cause) {
    throw new GuardError('REVOKD_GUARD_PROTOCOL', `${url}: ${describe(cause)}`, { cause });
  }
}
