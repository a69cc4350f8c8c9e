/**
 * @revokd/guard — verify revokd access tokens locally and enforce revocations from an in-memory index.
 *
 * This entry point currently exports the revocation model shared with the server; the verifier, the feed
 * follower and the framework adapters build on it.
 */
export { type RevocationDecision, RevocationIndex } from './model/revocation-index.ts';
export {
  describeRule,
  type LogEntry,
  RULE_KINDS,
  type Rule,
  type RuleKind,
  type TokenFacts,
} from './model/rule.ts';
export { FAMILY_CLAIM, ISSUED_AT_US_CLAIM, tokenFacts } from './model/token-facts.ts';
