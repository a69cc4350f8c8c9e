/**
 * Error types. Two families:
 * - {@link OAuthError}: an answer on the wire, with an RFC error code. Its `description` is sent to the client;
 *   anything internal goes in `cause`, which is logged and never serialised.
 * - {@link RevokdError}: an operational failure with a stable `REVOKD_*` code (see docs/errors.md).
 */

/** Error codes of RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 6750 §3.1, plus the HTTP-level ones revokd uses. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'access_denied'
  | 'not_found'
  | 'method_not_allowed'
  | 'temporarily_unavailable'
  | 'server_error';

const DEFAULT_STATUS: Readonly<Record<OAuthErrorCode, number>> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  invalid_target: 400,
  invalid_token: 401,
  insufficient_scope: 403,
  access_denied: 403,
  not_found: 404,
  method_not_allowed: 405,
  temporarily_unavailable: 503,
  server_error: 500,
};

export class OAuthError extends Error {
  override readonly name = 'OAuthError';
  readonly code: OAuthErrorCode;
  readonly status: number;
  /** Sent as `error_description`; must never hold secrets or internal detail. */
  readonly description: string;
  /** Seconds, sent as `Retry-After` (429, 503). */
  readonly retryAfterSeconds: number | undefined;
  /**
   * Whether a Bearer challenge names the error. RFC 6750 §3.1: a request that carried no credentials at all
   * gets a bare challenge.
   */
  readonly challengeNamesError: boolean;

  constructor(
    code: OAuthErrorCode,
    description: string,
    options: {
      status?: number;
      retryAfterSeconds?: number;
      challengeNamesError?: boolean;
      cause?: unknown;
    } = {},
  ) {
    super(`${code}: ${description}`, { cause: options.cause });
    this.code = code;
    this.description = description;
    this.status = options.status ?? DEFAULT_STATUS[code];
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.challengeNamesError = options.challengeNamesError ?? true;
  }
}

/** Stable codes of operational errors; documented in docs/errors.md. */
export type RevokdErrorCode =
  | 'REVOKD_CONFIG_INVALID'
  | 'REVOKD_STORE_UNAVAILABLE'
  | 'REVOKD_STORE_CONFLICT'
  | 'REVOKD_STORE_SCHEMA'
  | 'REVOKD_NOT_FOUND'
  | 'REVOKD_INVALID_ARGUMENT'
  | 'REVOKD_NO_SIGNING_KEY';

export class RevokdError extends Error {
  override readonly name = 'RevokdError';
  readonly code: RevokdErrorCode;

  constructor(code: RevokdErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
  }
}

export const isOAuthError = (error: unknown): error is OAuthError => error instanceof OAuthError;
export const isRevokdError = (error: unknown): error is RevokdError => error instanceof RevokdError;
