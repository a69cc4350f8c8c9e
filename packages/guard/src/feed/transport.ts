/**
 * The live part of the revocation feed, as a port: the follower loads snapshots over HTTP, keeps freshness and
 * sends receipts; a transport only delivers what comes after a cursor. `httpFeed()` (the server's event stream)
 * is the default; `redisFeed()` (`@revokd/guard/redis`) follows the server nodes' Redis stream.
 */
import type { FetchFunction } from '../http/fetch.ts';
import type { LogEntry } from '../model/rule.ts';
import type { HeartbeatFrame } from './wire.ts';

/** What the follower tells every transport: where the server is and the bounds it must keep. */
export interface FeedEnvironment {
  /** The server's base URL (feed paths are appended to it). */
  readonly serverUrl: string;
  /** The `Authorization` header value for the server's feed endpoints. */
  readonly authorization: string;
  readonly fetch: FetchFunction;
  /** The guard's id, when it sends receipts. */
  readonly guardId: string | undefined;
  /** Heartbeat period the guard would like, in milliseconds (a transport may not be able to choose it). */
  readonly heartbeatMs: number;
  /** A connection that delivers nothing (no heartbeat, no entry) for this long has failed, in milliseconds. */
  readonly idleTimeoutMs: number;
  /** Largest frame accepted, in characters. */
  readonly maxEventChars: number;
}

/**
 * One connection of a transport, from the follower's side. The handlers apply what the transport delivers;
 * they are no-ops once `signal` is aborted.
 */
export interface FeedConnection extends FeedEnvironment {
  /** Deliver what comes after this cursor (the index's cursor when the connection opened). */
  readonly after: number;
  /**
   * Aborted when the guard closes, when a handler asked for a snapshot reload ({@link FeedConnection.reset}),
   * or when the follower switches transport. `follow` must then return promptly (resolve).
   */
  readonly signal: AbortSignal;
  /** The transport is connected: call once, before delivering anything. */
  connected(): void;
  /** Entries after the applied cursor, in strictly increasing cursor order, validated. */
  entries(entries: readonly LogEntry[]): void;
  /**
   * As of `serverTimeMs` the feed has delivered every entry up to `cursor`: this confirms freshness. Call only
   * when that holds for this connection (no entry between the applied cursor and `cursor` can be missing).
   */
  heartbeat(frame: HeartbeatFrame): void;
  /**
   * The feed cannot continue the applied cursor (its log was replaced, or entries the guard needs are gone
   * from it): the follower reloads the snapshot and opens a new connection. Aborts `signal`.
   */
  reset(reason: string, cursor: number): void;
}

/** A probe of a transport the follower fell back from; see {@link FeedTransport.probe}. */
export interface FeedProbe extends FeedEnvironment {
  /** The cursor the guard has applied. */
  readonly after: number;
  /** Aborted when the guard closes. */
  readonly signal: AbortSignal;
}

/**
 * A way to follow the revocation log live. Transports are stateless: every `follow` opens its own
 * connection and closes it before returning, so one transport may serve several guards.
 */
export interface FeedTransport {
  /** A short name, reported in events and `health().feed` (`http`, `redis`). */
  readonly name: string;
  /**
   * Follows the log after `connection.after` until `connection.signal` is aborted (then resolves). Rejects
   * when the connection fails (a `GuardError`: the follower falls back to the next transport, or retries
   * after a backoff); a frame it cannot validate is a failure too, never skipped.
   */
  follow(connection: FeedConnection): Promise<void>;
  /**
   * Optional: whether following would work now, answered without delivering anything. The follower asks it
   * periodically while it runs on a later (fallback) transport, and returns to this one when it answers true.
   * Without it, the follower simply tries the transport again.
   */
  probe?(probe: FeedProbe): Promise<boolean>;
}
