import { isOAuthError, isRevokdError, OAuthError } from '../core/errors.ts';

/** A response ready to send: the only place errors become bytes on the wire. */
export interface WireError {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: string; readonly error_description: string };
  /** The original error, when it was unexpected and must be logged. */
  readonly unexpected: unknown;
}

/** How the failed request authenticated, which picks the `WWW-Authenticate` challenge (RFC 6749 §5.2, RFC 6750 §3). */
export type ChallengeScheme = 'Basic' | 'Bearer';

const REALM = 'revokd';

/**
 * Maps any error to an RFC-shaped answer: `{ error, error_description }`, `Cache-Control: no-store`, a
 * challenge on 401/403, `Retry-After` on 429/503. Internal detail never reaches the body.
 */
export function toWireError(error: unknown, scheme: ChallengeScheme = 'Basic'): WireError {
  const { oauth, unexpected } = classify(error);
  const headers: Record<string, string> = { 'cache-control': 'no-store', pragma: 'no-cache' };
  if (oauth.status === 401 || oauth.status === 403) {
    headers['www-authenticate'] =
      oauth.code === 'invalid_client'
        ? challenge('Basic', {})
        : challenge(
            scheme,
            scheme === 'Bearer' && oauth.challengeNamesError
              ? { error: oauth.code, error_description: oauth.description }
              : {},
          );
  }
  if (oauth.retryAfterSeconds !== undefined) headers['retry-after'] = String(oauth.retryAfterSeconds);
  return {
    status: oauth.status,
    headers,
    body: { error: oauth.code, error_description: oauth.description },
    unexpected,
  };
}

/** An RFC 7235 challenge; parameter values are quoted strings with `"` and `\` removed. */
export function challenge(scheme: ChallengeScheme, params: Record<string, string>): string {
  const parts = [`realm="${REALM}"`];
  for (const [name, value] of Object.entries(params)) parts.push(`${name}="${value.replace(/["\\]/g, '')}"`);
  return `${scheme} ${parts.join(', ')}`;
}

interface FastifyLikeError {
  code?: unknown;
  statusCode?: unknown;
}

function classify(error: unknown): { oauth: OAuthError; unexpected: unknown } {
  if (isOAuthError(error)) return { oauth: error, unexpected: undefined };
  if (isRevokdError(error)) {
    switch (error.code) {
      case 'REVOKD_STORE_UNAVAILABLE':
      case 'REVOKD_STORE_CONFLICT':
        return {
          oauth: new OAuthError('temporarily_unavailable', 'the service cannot store this now; retry', {
            retryAfterSeconds: 1,
          }),
          unexpected: error,
        };
      case 'REVOKD_NOT_FOUND':
        return { oauth: new OAuthError('not_found', error.message), unexpected: undefined };
      case 'REVOKD_INVALID_ARGUMENT':
        return { oauth: new OAuthError('invalid_request', error.message), unexpected: undefined };
      default:
        return { oauth: new OAuthError('server_error', 'internal error'), unexpected: error };
    }
  }
  const { code, statusCode } = (error ?? {}) as FastifyLikeError;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        oauth: new OAuthError('invalid_request', 'request body too large', { status: 413 }),
        unexpected: undefined,
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { oauth: new OAuthError('invalid_request', describeParserError(code)), unexpected: undefined };
  }
  if (error instanceof SyntaxError) {
    return { oauth: new OAuthError('invalid_request', 'request body is malformed'), unexpected: undefined };
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return {
      oauth: new OAuthError('invalid_request', 'malformed request', { status: statusCode }),
      unexpected: undefined,
    };
  }
  return { oauth: new OAuthError('server_error', 'internal error'), unexpected: error };
}

function describeParserError(code: string): string {
  switch (code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'unsupported content type';
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'Content-Length does not match the body';
    default:
      return 'request body is not valid JSON';
  }
}
