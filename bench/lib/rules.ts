import { randomUUID } from 'node:crypto';
import type { RevocationIndex } from '../../packages/guard/src/model/revocation-index.ts';
import type { Rule } from '../../packages/guard/src/model/rule.ts';

/** A token rule for a random UUID `jti`, live for the next hour (expiries spread over that hour, as in real use). */
export function tokenRule(nowMs: number, i: number): Rule {
  return { kind: 'token', jti: randomUUID(), expiresAtMs: nowMs + 600_000 + (i % 3_000_000) };
}

/** Adds `count` token rules to the index (none matches a benchmark token: they are all misses). */
export function addTokenRules(index: RevocationIndex, count: number, nowMs = Date.now()): void {
  for (let i = 0; i < count; i++) index.add(tokenRule(nowMs, i));
}

/** `1M`, `100k`, `0`. */
export function countLabel(count: number): string {
  if (count >= 1_000_000 && count % 1_000_000 === 0) return `${count / 1_000_000}M`;
  if (count >= 1000 && count % 1000 === 0) return `${count / 1000}k`;
  return String(count);
}
