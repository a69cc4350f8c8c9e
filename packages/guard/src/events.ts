import { channel } from 'node:diagnostics_channel';
import type { GuardErrorCode } from './errors.ts';

/**
 * The guard does not log. It publishes typed events on the `node:diagnostics_channel` channel
 * {@link GUARD_CHANNEL}; publishing costs nothing while no one subscribes.
 *
 * @example
 * ```ts
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe('revokd:guard', (event) => logger.info(event));
 * ```
 */
export const GUARD_CHANNEL = 'revokd:guard';

export type GuardEvent =
  | { readonly type: 'snapshot'; readonly cursor: number; readonly rules: number }
  /** A feed connection opened; `feed` names the transport (`http`, `redis`). */
  | { readonly type: 'connected'; readonly after: number; readonly feed: string }
  | { readonly type: 'live'; readonly cursor: number }
  | { readonly type: 'disconnected'; readonly cursor: number; readonly retryInMs: number }
  | { readonly type: 'reset'; readonly cursor: number; readonly reason: string }
  | { readonly type: 'keys'; readonly kids: readonly string[] }
  | { readonly type: 'pruned'; readonly entries: number }
  /** A back-channel logout token was accepted (see `createBackchannelLogoutReceiver`). */
  | {
      readonly type: 'logout';
      readonly jti: string;
      readonly sid: string | undefined;
      readonly sub: string | undefined;
    }
  /** A back-channel logout request or token was refused; `reason` is a `LogoutRejectReason` or `invalid_request`. */
  | { readonly type: 'logout_rejected'; readonly reason: string }
  | {
      readonly type: 'error';
      readonly during: 'snapshot' | 'stream' | 'keys';
      readonly code: GuardErrorCode;
      readonly message: string;
    };

const guardChannel = channel(GUARD_CHANNEL);

/** Publishes an event; the event is built only when someone listens. */
export function emit(build: () => GuardEvent): void {
  if (guardChannel.hasSubscribers) guardChannel.publish(build());
}
