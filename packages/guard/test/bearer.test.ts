import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { INVALID_TOKEN, MISSING_TOKEN, NOT_READY, REVOKED, STALE } from '../src/decision.ts';
import { bearerChallenge, bearerToken, httpRejection } from '../src/http/bearer.ts';

describe('bearerToken (RFC 6750 §2.1)', () => {
  const cases: Array<[string | undefined | null, string | undefined]> = [
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc', 'abc'],
    ['BEARER abc', 'abc'],
    ['Bearer   abc  ', 'abc'],
    [' Bearer abc', 'abc'],
    ['Bearer a-b_c~d+e/f==', 'a-b_c~d+e/f=='],
    ['Bearer', undefined],
    ['Bearer ', undefined],
    ['Bearer a b', undefined],
    ['Bearer a=b', undefined],
    ['Bearer a,b', undefined],
    ['Bearer\tabc', undefined],
    ['Basic YTpi', undefined],
    ['Bearerabc', undefined],
    ['', undefined],
    [undefined, undefined],
    [null, undefined],
  ];
  for (const [header, expected] of cases) {
    test(`${JSON.stringify(header)} → ${JSON.stringify(expected)}`, () => {
      assert.equal(bearerToken(header), expected);
    });
  }
});

describe('bearerChallenge (RFC 6750 §3)', () => {
  test('exact bytes', () => {
    assert.equal(bearerChallenge(), 'Bearer');
    assert.equal(bearerChallenge({ realm: 'api' }), 'Bearer realm="api"');
    assert.equal(
      bearerChallenge({ realm: 'api', error: 'invalid_token', errorDescription: 'The token expired' }),
      'Bearer realm="api", error="invalid_token", error_description="The token expired"',
    );
    assert.equal(
      bearerChallenge({ realm: 'api', scope: 'read write', error: 'insufficient_scope' }),
      'Bearer realm="api", scope="read write", error="insufficient_scope"',
    );
  });

  test('cannot be broken by quotes, backslashes or line breaks', () => {
    assert.equal(bearerChallenge({ realm: 'a"b\\c\r\nd' }), 'Bearer realm="a\\"b\\\\cd"');
    assert.equal(
      bearerChallenge({ error: 'invalid_token', errorDescription: 'x", error="other\r\n' }),
      'Bearer error="invalid_token", error_description="x, error=other"',
    );
  });
});

describe('httpRejection', () => {
  test('a missing token: 401, challenge without error code, no body', () => {
    assert.deepEqual(httpRejection(MISSING_TOKEN, { realm: 'api' }), {
      status: 401,
      headers: { 'www-authenticate': 'Bearer realm="api"' },
      body: undefined,
    });
  });

  test('an invalid or revoked token: 401 invalid_token, the reason kept server-side by default', () => {
    for (const decision of [INVALID_TOKEN.expired, REVOKED.subject]) {
      assert.deepEqual(httpRejection(decision), {
        status: 401,
        headers: {
          'cache-control': 'no-store',
          'www-authenticate': 'Bearer realm="revokd", error="invalid_token"',
        },
        body: { error: 'invalid_token' },
      });
    }
    assert.deepEqual(httpRejection(REVOKED.token, { describeErrors: true }).body, {
      error: 'invalid_token',
      error_description: 'revoked',
    });
  });

  test('stale or not ready: 503 with Retry-After', () => {
    for (const decision of [STALE, NOT_READY]) {
      assert.deepEqual(httpRejection(decision, { retryAfterSeconds: 2 }), {
        status: 503,
        headers: { 'cache-control': 'no-store', 'retry-after': '2' },
        body: { error: 'temporarily_unavailable' },
      });
    }
  });
});
