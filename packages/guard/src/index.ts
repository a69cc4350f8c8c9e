/**
 * @revokd/guard — verify revokd access tokens locally and enforce revocations from an in-memory index that
 * the server keeps current by push.
 *
 * - {@link createGuard}: the framework-free guard (verification + revocation index + feed follower).
 * - {@link AccessTokenVerifier}, {@link KeySet}, {@link RemoteKeySet}: the RFC 9068 verifier on its own.
 * - {@link FeedFollower} and the wire formats of the revocation feed, shared with the server; its live
 *   transports: {@link httpFeed} (the default) here, `redisFeed` in `@revokd/guard/redis`.
 * - The revocation model ({@link RevocationIndex}, {@link Rule}, {@link tokenFacts}), shared with the server.
 * - {@link createBackchannelLogoutReceiver}: OpenID Connect Back-Channel Logout tokens turned into local revocations.
 */

export {
  BACKCHANNEL_LOGOUT_EVENT,
  type BackchannelLogout,
  LOGOUT_REJECT_REASONS,
  LOGOUT_TOKEN_TYP,
  type LogoutRejectReason,
  type LogoutTokenDecision,
  LogoutTokenValidator,
  type LogoutTokenValidatorOptions,
} from './backchannel/logout-token.ts';
export {
  type BackchannelLogoutReceiver,
  type BackchannelLogoutReceiverOptions,
  type BackchannelLogoutResponse,
  createBackchannelLogoutReceiver,
  type LocalRevocationTarget,
  type LogoutReceipt,
} from './backchannel/receiver.ts';
export type {
  GuardAcceptance,
  GuardDecision,
  GuardRejection,
  InvalidTokenRejection,
  MissingTokenRejection,
  UnavailableRejection,
} from './decision.ts';
export { GuardError, type GuardErrorCode, isGuardError } from './errors.ts';
export { GUARD_CHANNEL, type GuardEvent } from './events.ts';
export {
  backoffDelayMs,
  FeedFollower,
  type FeedFollowerOptions,
  type FeedState,
  type ReconnectOptions,
} from './feed/follower.ts';
export { httpFeed } from './feed/http.ts';
export {
  encodeSseEvent,
  type SseEvent,
  SseLimitError,
  SseParser,
  type SseParserOptions,
} from './feed/sse.ts';
export type { FeedConnection, FeedEnvironment, FeedProbe, FeedTransport } from './feed/transport.ts';
export {
  type EntriesFrame,
  encodeEntriesFrame,
  encodeHeartbeatFrame,
  encodeResetFrame,
  FEED_PATHS,
  GUARD_ID_PATTERN,
  HEARTBEAT_MS,
  type HeartbeatFrame,
  type LogPage,
  parseEntries,
  parseEntriesFrame,
  parseHeartbeatFrame,
  parseResetFrame,
  parseRule,
  parseSnapshot,
  type ReceiptBody,
  type ResetFrame,
  type SnapshotBody,
  STREAM_EVENTS,
} from './feed/wire.ts';
export {
  type CheckOptions,
  createGuard,
  type Guard,
  type GuardHealth,
  type GuardMode,
  type GuardOptions,
  type StalePolicy,
} from './guard.ts';
export {
  type BearerChallengeParams,
  bearerChallenge,
  bearerToken,
  type HttpRejection,
  type HttpRejectionOptions,
  httpRejection,
} from './http/bearer.ts';
export { basicAuthorization, type FetchFunction } from './http/fetch.ts';
export {
  type RevocationDecision,
  RevocationIndex,
  type RevocationIndexOptions,
} from './model/revocation-index.ts';
export {
  type AllowRule,
  describeRule,
  type LogEntry,
  REVOCATION_KINDS,
  type RevocationKind,
  RULE_KINDS,
  type Rule,
  type RuleKind,
  type TokenFacts,
} from './model/rule.ts';
export { FAMILY_CLAIM, ISSUED_AT_US_CLAIM, tokenFacts } from './model/token-facts.ts';
export {
  GUARD_ALGORITHMS,
  type GuardAlgorithm,
  type KeyResolver,
  KeySet,
  VerificationKey,
} from './verify/key-set.ts';
export {
  discoverJwksUri,
  METADATA_SUFFIX,
  metadataUrl,
  RemoteKeySet,
  type RemoteKeySetOptions,
} from './verify/remote-key-set.ts';
export {
  type AccessTokenClaims,
  AccessTokenVerifier,
  VERIFY_FAILURE_REASONS,
  type VerifiedToken,
  type VerifierOptions,
  type VerifyDecision,
  type VerifyFailureReason,
  type VerifyRejection,
  verifyRejection,
} from './verify/verifier.ts';
