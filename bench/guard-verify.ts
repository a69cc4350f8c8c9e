/**
 * Guard verification, cold: every token is new to the guard (a fresh verifier, so an empty verified-token
 * cache, each round), as after a deploy or under a flood of distinct tokens.
 *
 * For EdDSA, ES256, RS256 and HS256, at 0 / 100k / 1M active token rules, side by side on the same token bytes:
 * - raw node:crypto: `crypto.verify` with a KeyObject (ES256 with `dsaEncoding: 'ieee-p1363'`), HS256 with
 *   `createHmac` + `timingSafeEqual`: the signature check alone, the physical limit (the baseline of the ratios);
 * - crypto.subtle: `crypto.subtle.verify` awaited, one token at a time: what jose calls underneath;
 * - guard: `AccessTokenVerifier.verify` (synchronous: `crypto.verify` on keys imported once) + `RevocationIndex.check`,
 *   as the guard does per request;
 * - jose.jwtVerify with an imported CryptoKey (issuer, audience, `typ` checked);
 * - fast-jwt `createVerifier` (issuer, audience, `typ` checked, its cache off).
 * The guard accepts asymmetric algorithms only, so its HS256 cell is n/a by design.
 *
 * Target: guard ≥ 0.85 × raw for EdDSA and ES256 at 1M rules.
 * Reproduce: `npm run bench -- guard-verify` (add `--quick` for smaller counts).
 */
import { createHmac, verify as cryptoVerify, timingSafeEqual, webcrypto } from 'node:crypto';
import { createVerifier } from 'fast-jwt';
import { type CryptoKey, importJWK, jwtVerify } from 'jose';
import { RevocationIndex } from '../packages/guard/src/model/revocation-index.ts';
import { GUARD_ALGORITHMS, KeySet } from '../packages/guard/src/verify/key-set.ts';
import { AccessTokenVerifier } from '../packages/guard/src/verify/verifier.ts';
import { type Contender, sideBySide } from './lib/measure.ts';
import { judge } from './lib/report.ts';
import { addTokenRules, countLabel } from './lib/rules.ts';
import {
  AUDIENCE,
  BENCH_ALGORITHMS,
  type BenchAlgorithm,
  ISSUER,
  makeSigningKey,
  mintTokens,
  type SigningKey,
} from './lib/tokens.ts';
import { type BenchOptions, type BenchResult, byMode, type Row } from './lib/types.ts';

export const name = 'guard-verify';
export const title = 'Guard verification, cold';

const RAW = 'raw node:crypto';
const SUBTLE = 'crypto.subtle';
const GUARD = 'guard';
const JOSE = 'jose.jwtVerify';
const FAST_JWT = 'fast-jwt';
const TARGET_RATIO = 0.85;
const TARGET_ALGORITHMS: ReadonlySet<BenchAlgorithm> = new Set(['EdDSA', 'ES256']);

export async function run({ mode, progress }: BenchOptions): Promise<BenchResult> {
  const ruleCounts = byMode(mode, {
    full: [0, 100_000, 1_000_000],
    quick: [0, 10_000, 100_000],
    smoke: [0, 100, 1000],
  });
  const tokensPerRound = byMode(mode, { full: 1000, quick: 200, smoke: 3 });
  const samples = byMode(mode, { full: 7, quick: 5, smoke: 5 });
  const warmup = 1;

  progress.step(`keys and ${tokensPerRound} tokens per algorithm`);
  const cases = await Promise.all(
    BENCH_ALGORITHMS.map(async (alg) => {
      const key = makeSigningKey(alg);
      return { key, tokens: mintTokens(key, tokensPerRound), webKey: await webCryptoKey(key) };
    }),
  );

  const index = new RevocationIndex();
  const rows: Row[] = [];
  const perOpUs = new Map<string, number>();
  let loaded = 0;
  for (const rules of ruleCounts) {
    progress.step(`${countLabel(rules)} active rules: filling the index`);
    addTokenRules(index, rules - loaded);
    loaded = rules;
    for (const { key, tokens, webKey } of cases) {
      const group = `${key.alg} · ${countLabel(rules)} rules`;
      const contenders = await contendersFor(key, tokens, webKey, index);
      const results = await sideBySide(contenders, {
        samples,
        warmup,
        baseline: RAW,
        onRound: (round, total) => {
          if (round === total) progress.step(`${group}: ${total} rounds done`);
        },
      });
      const isTargetCase = TARGET_ALGORITHMS.has(key.alg) && rules === ruleCounts.at(-1);
      for (const subject of [RAW, SUBTLE, GUARD, JOSE, FAST_JWT]) {
        const result = results.get(subject);
        if (result === undefined) {
          rows.push({ group, subject, unit: 'ops/s', value: undefined, note: 'HS256 refused by design' });
          continue;
        }
        perOpUs.set(`${key.alg}/${rules}/${subject}`, 1e6 / result.rate.median);
        rows.push({
          group,
          subject,
          unit: 'ops/s',
          value: result.rate,
          ...(subject === RAW || !result.ratio ? {} : { ratio: { to: 'raw', value: result.ratio } }),
          ...(subject === GUARD && isTargetCase
            ? { target: { text: `≥ ${TARGET_RATIO}× raw`, met: judge(result.ratio, '>=', TARGET_RATIO) } }
            : {}),
        });
      }
    }
  }

  return {
    name,
    title,
    layout: 'pivot',
    params: {
      'active token rules': ruleCounts.map(countLabel).join(' / '),
      'distinct tokens per round': tokensPerRound,
      rounds: `${samples} (+${warmup} warm-up)`,
      'in flight': 'one token at a time',
    },
    rows,
    notes: explain(perOpUs, ruleCounts.at(-1)!),
  };
}

async function contendersFor(
  key: SigningKey,
  tokens: readonly string[],
  webKey: CryptoKey,
  index: RevocationIndex,
): Promise<Contender[]> {
  const ops = tokens.length;
  const raw = rawVerify(key);
  const subtleParams = SUBTLE_PARAMS[key.alg];
  const fastJwt = createVerifier({
    key: key.fastJwtKey,
    algorithms: [key.alg],
    allowedIss: ISSUER,
    allowedAud: AUDIENCE,
    checkTyp: 'at+jwt',
    cache: false,
  });
  const contenders: Contender[] = [
    {
      name: RAW,
      ops,
      batch() {
        // As each token arrives: split at the last dot, decode the signature, verify those bytes.
        for (const token of tokens) {
          const dot = token.lastIndexOf('.');
          if (!raw(Buffer.from(token.slice(0, dot)), Buffer.from(token.slice(dot + 1), 'base64url'))) {
            throw new Error(`raw ${key.alg} verification failed`);
          }
        }
      },
    },
    {
      name: SUBTLE,
      ops,
      async batch() {
        for (const token of tokens) {
          const dot = token.lastIndexOf('.');
          const data = Buffer.from(token.slice(0, dot));
          const signature = Buffer.from(token.slice(dot + 1), 'base64url');
          if (!(await webcrypto.subtle.verify(subtleParams, webKey, signature, data))) {
            throw new Error(`crypto.subtle ${key.alg} verification failed`);
          }
        }
      },
    },
    {
      name: JOSE,
      ops,
      async batch() {
        for (const token of tokens) {
          await jwtVerify(token, webKey, {
            issuer: ISSUER,
            audience: AUDIENCE,
            algorithms: [key.alg],
            typ: 'at+jwt',
          });
        }
      },
    },
    {
      name: FAST_JWT,
      ops,
      batch() {
        for (const token of tokens) fastJwt(token);
      },
    },
  ];
  if (key.alg !== 'HS256') {
    const keys = await KeySet.fromJwks({ keys: [key.jwk] }, GUARD_ALGORITHMS);
    let verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, keys });
    contenders.push({
      name: GUARD,
      ops,
      // A fresh verifier per round: every token of the round is new to its verified-token cache.
      prepare() {
        verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, keys });
      },
      batch() {
        for (const token of tokens) {
          const nowMs = Date.now();
          const verified = verifier.verify(token, nowMs);
          if (!verified.ok) throw new Error(`the guard rejected a ${key.alg} token: ${verified.reason}`);
          if (index.check(verified.facts, nowMs).revoked) throw new Error('a benchmark token was revoked');
        }
      },
    });
  }
  return contenders;
}

function rawVerify(key: SigningKey): (data: Buffer, signature: Buffer) => boolean {
  const publicKey = key.verificationKey;
  switch (key.alg) {
    case 'EdDSA':
      return (data, signature) => cryptoVerify(null, data, publicKey, signature);
    case 'ES256': {
      const options = { key: publicKey, dsaEncoding: 'ieee-p1363' } as const;
      return (data, signature) => cryptoVerify('sha256', data, options, signature);
    }
    case 'RS256':
      return (data, signature) => cryptoVerify('sha256', data, publicKey, signature);
    case 'HS256':
      return (data, signature) => {
        const mac = createHmac('sha256', publicKey).update(data).digest();
        return mac.length === signature.length && timingSafeEqual(mac, signature);
      };
  }
}

/** The key as a WebCrypto CryptoKey (jose's `importJWK` gives a Uint8Array for an `oct` key). */
async function webCryptoKey(key: SigningKey): Promise<CryptoKey> {
  if (key.alg !== 'HS256') return (await importJWK(key.jwk, key.alg)) as CryptoKey;
  return webcrypto.subtle.importKey(
    'raw',
    key.verificationKey.export(),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['verify'],
  );
}

const SUBTLE_PARAMS: Record<BenchAlgorithm, string | { name: string; hash?: string }> = {
  EdDSA: 'Ed25519',
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
  RS256: 'RSASSA-PKCS1-v1_5',
  HS256: 'HMAC',
};

/** Where the guard's time goes, in µs per token, from the medians of the largest rule count. */
function explain(perOpUs: ReadonlyMap<string, number>, rules: number): string[] {
  const notes: string[] = [];
  for (const alg of ['EdDSA', 'ES256'] as const) {
    const at = (subject: string) => perOpUs.get(`${alg}/${rules}/${subject}`);
    const raw = at(RAW);
    const subtle = at(SUBTLE);
    const guard = at(GUARD);
    if (raw === undefined || subtle === undefined || guard === undefined) continue;
    notes.push(
      `${alg} at ${countLabel(rules)} rules: raw ${raw.toFixed(1)} µs/token, guard ${guard.toFixed(1)} µs ` +
        `(+${(guard - raw).toFixed(1)} µs over raw: header and payload decoding, claim checks, the signature ` +
        'segment decoding, the cache insert and the index check), crypto.subtle alone ' +
        `${subtle.toFixed(1)} µs (+${(subtle - raw).toFixed(1)} µs for the async WebCrypto round trip).`,
    );
  }
  notes.push(
    'The guard verifies signatures synchronously with `crypto.verify` on `KeyObject`s imported once per key ' +
      "(Node's own JWK import), as fast-jwt does; jose.jwtVerify and crypto.subtle pay an async WebCrypto " +
      'round trip (the libuv thread pool and back) per token on top of the signature itself.',
  );
  return notes;
}
