/**
 * Operational errors of the guard: configuration mistakes and failures to reach or understand the server.
 * A rejected token is never an error: {@link Guard.check} answers with a decision value.
 *
 * Codes are stable; messages are not part of the contract.
 */
export type GuardErrorCode =
  /** An option is missing or out of range; the message names the key. */
  | 'REVOKD_GUARD_CONFIG'
  /** The guard did not become ready within `readyTimeoutMs`. */
  | 'REVOKD_GUARD_NOT_READY'
  /** The server refused the guard's client credentials (HTTP 401/403). */
  | 'REVOKD_GUARD_UNAUTHORIZED'
  /** A request to the server failed: network error, timeout or unexpected status. */
  | 'REVOKD_GUARD_HTTP'
  /** The server answered with something the guard does not understand (bad JSON, invalid rule or frame). */
  | 'REVOKD_GUARD_PROTOCOL'
  /** A feed transport other than the server's HTTP stream (e.g. Redis) failed: unreachable, no answer, or silent. */
  | 'REVOKD_GUARD_FEED'
  /** The guard was closed. */
  | 'REVOKD_GUARD_CLOSED';

export class GuardError extends Error {
  override readonly name = 'GuardError';
  readonly code: GuardErrorCode;

  constructor(code: GuardErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

export function isGuardError(value: unknown): value is GuardError {
  return value instanceof GuardError;
}
