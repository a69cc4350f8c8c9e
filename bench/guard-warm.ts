/**
 * Guard verification, warm: the same tokens come back, as in real traffic. The verified-token cache may skip the
 * signature, never the revocation check (every check below runs `RevocationIndex.check` at 1M active rules).
 *
 * Side by side, one check at a time on one thread:
 * - core, fresh strings: `AccessTokenVerifier.verify` (a cache hit) + `RevocationIndex.check`,
 *   each token a new string object as a server gets it from a request header (so its hash is computed again);
 * - core, same strings: the same, re-using the string objects (their hash is cached): an upper bound;
 * - guard.check(): the public (synchronous) API of a guard built with `createGuard` against an in-process fake
 *   server (the guard's test double), which served it the same 1M-rule snapshot; fresh `Bearer …` header strings.
 *
 * Target: ≥ 1,000,000 checks/s on one core at 1M active rules.
 * Reproduce: `npm run bench -- guard-warm`.
 */
import { createGuard } from '../packages/guard/src/guard.ts';
import { RevocationIndex } from '../packages/guard/src/model/revocation-index.ts';
import { GUARD_ALGORITHMS, KeySet } from '../packages/guard/src/verify/key-set.ts';
import { AccessTokenVerifier } from '../packages/guard/src/verify/verifier.ts';
import { CLIENT, FakeServer } from '../packages/guard/test/support/fake-server.ts';
import { type Contender, sideBySide } from './lib/measure.ts';
import { judge } from './lib/report.ts';
import { countLabel, tokenRule } from './lib/rules.ts';
import { AUDIENCE, freshCopy, ISSUER, makeSigningKey, mintTokens } from './lib/tokens.ts';
import type { BenchOptions, BenchResult, Row } from './lib/types.ts';
import { byMode } from './lib/types.ts';

export const name = 'guard-warm';
export const title = 'Guard verification, warm';

const FRESH = 'core, fresh strings';
const SAME = 'core, same strings';
const PUBLIC = 'guard.check()';
const TARGET = 1_000_000;

export async function run({ mode, progress }: BenchOptions): Promise<BenchResult> {
  const ruleCount = byMode(mode, { full: 1_000_000, quick: 100_000, smoke: 1000 });
  const distinctTokens = byMode(mode, { full: 1000, quick: 1000, smoke: 20 });
  const checksPerRound = byMode(mode, { full: 200_000, quick: 100_000, smoke: 200 });
  const samples = byMode(mode, { full: 7, quick: 5, smoke: 5 });
  const warmup = 1;

  progress.step(`${countLabel(ruleCount)} token rules, ${distinctTokens} EdDSA tokens`);
  const key = makeSigningKey('EdDSA');
  const tokens = mintTokens(key, distinctTokens);
  const nowMs = Date.now();
  let rules = Array.from({ length: ruleCount }, (_, i) => tokenRule(nowMs, i));
  const index = new RevocationIndex();
  index.reset(rules, ruleCount);

  progress.step('starting a guard on the fake server (it loads the snapshot)');
  const server = new FakeServer();
  server.jwks = { keys: [key.jwk] };
  server.snapshot = { cursor: ruleCount, rules };
  rules = [];
  const guard = createGuard({
    issuer: ISSUER,
    audience: AUDIENCE,
    clientId: CLIENT.id,
    clientSecret: CLIENT.secret,
    fetch: server.fetch,
    // Nothing may interrupt the measurement: no staleness, no idle reconnect, no pruning pass.
    maxStalenessMs: 3_600_000,
    idleTimeoutMs: 3_600_000,
    pruneIntervalMs: 86_400_000,
    requestTimeoutMs: 120_000,
    readyTimeoutMs: 120_000,
  });
  try {
    (await server.stream(0, 120_000)).heartbeat(ruleCount, Date.now());
    await guard.ready();
    server.snapshot = { cursor: ruleCount, rules: [] };
    const active = guard.health().activeRules;
    if (active !== ruleCount) throw new Error(`the guard holds ${active} rules, expected ${ruleCount}`);

    const keys = await KeySet.fromJwks({ keys: [key.jwk] }, GUARD_ALGORITHMS);
    const verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, keys });
    for (const token of tokens) {
      const verified = verifier.verify(token, Date.now());
      const decision = guard.check(token);
      if (!verified.ok || !decision.ok) throw new Error('a benchmark token was rejected');
    }
    // Every token is now remembered: the rounds below measure cache hits (verify is synchronous either way).
    if (verifier.cachedTokens !== tokens.length) throw new Error('the verified-token cache lost a token');

    const core = (inputs: readonly string[]) => {
      for (const token of inputs) {
        const now = Date.now();
        const verified = verifier.verify(token, now);
        if (!verified.ok) throw new Error(`a warm token was rejected: ${verified.reason}`);
        if (index.check(verified.facts, now).revoked) throw new Error('a benchmark token was revoked');
      }
    };
    const cycle = (make: (token: string) => string) =>
      Array.from({ length: checksPerRound }, (_, i) => make(tokens[i % tokens.length]!));
    let inputs: string[] = [];
    const contenders: Contender[] = [
      {
        name: FRESH,
        ops: checksPerRound,
        prepare: () => {
          inputs = cycle(freshCopy);
        },
        batch: () => core(inputs),
      },
      {
        name: SAME,
        ops: checksPerRound,
        prepare: () => {
          inputs = cycle((token) => token);
        },
        batch: () => core(inputs),
      },
      {
        name: PUBLIC,
        ops: checksPerRound,
        prepare: () => {
          inputs = cycle((token) => freshCopy(`Bearer ${token}`));
        },
        batch() {
          for (const header of inputs) {
            const decision = guard.check(header);
            if (!decision.ok) throw new Error(`guard.check rejected a warm token: ${decision.reason}`);
          }
        },
      },
    ];
    const results = await sideBySide(contenders, {
      samples,
      warmup,
      baseline: FRESH,
      onRound: (round, total) => progress.step(`round ${round}/${total}`),
    });

    const group = `EdDSA · ${countLabel(ruleCount)} rules`;
    const rows: Row[] = [FRESH, SAME, PUBLIC].map((subject) => {
      const result = results.get(subject)!;
      return {
        group,
        subject,
        unit: 'checks/s',
        value: result.rate,
        ...(subject === FRESH || !result.ratio ? {} : { ratio: { to: 'fresh core', value: result.ratio } }),
        ...(subject === SAME
          ? { note: 'upper bound: hashes of the token strings cached' }
          : { target: { text: '≥ 1,000,000/s', met: judge(result.rate, '>=', TARGET) } }),
      };
    });
    const ns = (subject: string) => 1e9 / results.get(subject)!.rate.median;
    return {
      name,
      title,
      params: {
        'active token rules': countLabel(ruleCount),
        'distinct tokens': distinctTokens,
        'checks per round': checksPerRound,
        rounds: `${samples} (+${warmup} warm-up)`,
      },
      rows,
      notes: [
        `Per check: ${Math.round(ns(FRESH))} ns in the synchronous core with a fresh token string, ` +
          `${Math.round(ns(SAME))} ns with re-used string objects, ${Math.round(ns(PUBLIC))} ns through ` +
          '`guard.check()` (synchronous: header parsing and the stale-policy check on top of the core).',
        'The verified-token cache is a Map keyed by the last 22 characters of the token (the end of its ' +
          'signature); a hit is confirmed by comparing the whole token, so a new string from a request is ' +
          `compared (a memory comparison) rather than hashed in full (${tokens[0]!.length} characters). ` +
          'The revocation check runs on every check, cache hit or not.',
      ],
    };
  } finally {
    await guard.close();
  }
}
