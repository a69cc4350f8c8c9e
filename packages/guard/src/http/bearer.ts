import type { GuardRejection } from '../decision.ts';

/** RFC 6750 §2.1: `Bearer` (any case), one or more spaces, a b64token; optional surrounding whitespace. */
const BEARER_HEADER = /^[ \t]*bearer +([A-Za-z0-9\-._~+/]+=*)[ \t]*$/i;

/**
 * The bearer token of an `Authorization` header value, or `undefined` when the header is absent, uses another
 * scheme, or is not `Bearer <b64token>`.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1
 */
export function bearerToken(header: string | null | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  return BEARER_HEADER.exec(header)?.[1];
}

/** True when the header names the Bearer scheme, whether or not its credentials are well formed. */
export function isBearerScheme(header: string): boolean {
  return /^[ \t]*bearer(?:[ \t]|$)/i.test(header);
}

export interface BearerChallengeParams {
  /** Protection space; quoted (with `"` and `\` escaped). */
  readonly realm?: string;
  /** RFC 6750 §3.1 error code. Omit when the request carried no token (§3.1). */
  readonly error?: 'invalid_request' | 'invalid_token' | 'insufficient_scope';
  /** Human-readable; characters RFC 6750 §3 does not allow are dropped. */
  readonly errorDescription?: string;
  /** Scopes the resource needs (space-separated scope tokens). */
  readonly scope?: string;
}

/**
 * Builds an RFC 6750 §3 `WWW-Authenticate` challenge, e.g. `Bearer realm="api", error="invalid_token"`.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function bearerChallenge(params: BearerChallengeParams = {}): string {
  const parts: string[] = [];
  if (params.realm !== undefined) parts.push(`realm="${quote(params.realm)}"`);
  if (params.scope !== undefined)
    parts.push(`scope="${params.scope.replace(/[^\x21\x23-\x5B\x5D-\x7E ]/g, '')}"`);
  if (params.error !== undefined) parts.push(`error="${params.error}"`);
  if (params.errorDescription !== undefined) {
    parts.push(
      `error_description="${params.errorDescription.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '')}"`,
    );
  }
  return parts.length === 0 ? 'Bearer' : `Bearer ${parts.join(', ')}`;
}

/** RFC 7230 quoted-string content: printable characters, with `"` and `\` escaped. */
function quote(value: string): string {
  return value.replace(/[^\t\x20-\x7E\x80-\xFF]/g, '').replace(/["\\]/g, '\\$&');
}

export interface HttpRejection {
  readonly status: 401 | 503;
  readonly headers: Readonly<Record<string, string>>;
  /** JSON body, or undefined when there is nothing to say (no token was sent). */
  readonly body: { readonly error: string; readonly error_description?: string } | undefined;
}

export interface HttpRejectionOptions {
  /** Realm of the challenge. Default `revokd`. */
  readonly realm?: string;
  /** Put the rejection reason code in `error_description`. Default false: the reason stays server-side. */
  readonly describeErrors?: boolean;
  /** `Retry-After` of a 503, in seconds. Default 5. */
  readonly retryAfterSeconds?: number;
}

/**
 * How to answer a rejected request over HTTP: 401 with a Bearer challenge for a missing, invalid or revoked
 * token; 503 with `Retry-After` when the guard cannot vouch for its revocation index.
 */
export function httpRejection(decision: GuardRejection, options: HttpRejectionOptions = {}): HttpRejection {
  const realm = options.realm ?? 'revokd';
  if (decision.status === 503) {
    return {
      status: 503,
      headers: { 'cache-control': 'no-store', 'retry-after': String(options.retryAfterSeconds ?? 5) },
      body: {
        error: decision.error,
        ...(options.describeErrors ? { error_description: decision.reason } : {}),
      },
    };
  }
  if (decision.error === undefined) {
    return { status: 401, headers: { 'www-authenticate': bearerChallenge({ realm }) }, body: undefined };
  }
  const description = options.describeErrors ? decision.reason : undefined;
  return {
    status: 401,
    headers: {
      'cache-control': 'no-store',
      'www-authenticate': bearerChallenge({
        realm,
        error: decision.error,
        ...(description ? { errorDescription: description } : {}),
      }),
    },
    body: { error: decision.error, ...(description ? { error_description: description } : {}) },
  };
}
