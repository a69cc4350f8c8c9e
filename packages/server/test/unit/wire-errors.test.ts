import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OAuthError, RevokdError } from '../../src/core/errors.ts';
import { type ChallengeScheme, challenge, toWireError } from '../../src/http/errors.ts';

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/** A Fastify framework error: an Error with a `code` (and usually a `statusCode`). */
function fastifyError(code: string, statusCode: number, message = 'fastify says no'): Error {
  return Object.assign(new Error(message), { code, statusCode });
}

interface Case {
  readonly name: string;
  readonly error: unknown;
  readonly scheme?: ChallengeScheme;
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: { error: string; error_description: string };
  /** Whether the original error is handed back for logging. */
  readonly unexpected: boolean;
}

const cases: readonly Case[] = [
  {
    name: 'invalid_request is 400 with no-store and no challenge',
    error: new OAuthError('invalid_request', 'parameter token is required'),
    status: 400,
    headers: NO_STORE,
    body: { error: 'invalid_request', error_description: 'parameter token is required' },
    unexpected: false,
  },
  {
    name: 'invalid_grant is 400',
    error: new OAuthError('invalid_grant', 'refresh token is invalid'),
    status: 400,
    headers: NO_STORE,
    body: { error: 'invalid_grant', error_description: 'refresh token is invalid' },
    unexpected: false,
  },
  {
    name: 'invalid_client is 401 with a Basic challenge',
    error: new OAuthError('invalid_client', 'client authentication failed'),
    status: 401,
    headers: { ...NO_STORE, 'www-authenticate': 'Basic realm="revokd"' },
    body: { error: 'invalid_client', error_description: 'client authentication failed' },
    unexpected: false,
  },
  {
    name: 'invalid_client is challenged with Basic even on a Bearer endpoint',
    error: new OAuthError('invalid_client', 'client authentication failed'),
    scheme: 'Bearer',
    status: 401,
    headers: { ...NO_STORE, 'www-authenticate': 'Basic realm="revokd"' },
    body: { error: 'invalid_client', error_description: 'client authentication failed' },
    unexpected: false,
  },
  {
    name: 'invalid_token on a Bearer endpoint is 401 with a Bearer challenge carrying error=',
    error: new OAuthError('invalid_token', 'the access token was revoked'),
    scheme: 'Bearer',
    status: 401,
    headers: {
      ...NO_STORE,
      'www-authenticate':
        'Bearer realm="revokd", error="invalid_token", error_description="the access token was revoked"',
    },
    body: { error: 'invalid_token', error_description: 'the access token was revoked' },
    unexpected: false,
  },
  {
    name: 'insufficient_scope on a Bearer endpoint is 403 with a Bearer challenge carrying error=',
    error: new OAuthError('insufficient_scope', 'scope revokd:admin is required'),
    scheme: 'Bearer',
    status: 403,
    headers: {
      ...NO_STORE,
      'www-authenticate':
        'Bearer realm="revokd", error="insufficient_scope", error_description="scope revokd:admin is required"',
    },
    body: { error: 'insufficient_scope', error_description: 'scope revokd:admin is required' },
    unexpected: false,
  },
  {
    name: 'a Bearer challenge strips quotes and backslashes from the description',
    error: new OAuthError('invalid_token', 'a "quoted" \\ value'),
    scheme: 'Bearer',
    status: 401,
    headers: {
      ...NO_STORE,
      'www-authenticate': 'Bearer realm="revokd", error="invalid_token", error_description="a quoted  value"',
    },
    body: { error: 'invalid_token', error_description: 'a "quoted" \\ value' },
    unexpected: false,
  },
  {
    name: 'a rate limit is 429 with Retry-After',
    error: new OAuthError('temporarily_unavailable', 'rate limit exceeded', {
      status: 429,
      retryAfterSeconds: 7,
    }),
    status: 429,
    headers: { ...NO_STORE, 'retry-after': '7' },
    body: { error: 'temporarily_unavailable', error_description: 'rate limit exceeded' },
    unexpected: false,
  },
  {
    name: 'REVOKD_STORE_UNAVAILABLE is 503 with Retry-After and is logged, its message hidden',
    error: new RevokdError(
      'REVOKD_STORE_UNAVAILABLE',
      'SQLITE_BUSY: database is locked at /var/lib/revokd.db',
    ),
    status: 503,
    headers: { ...NO_STORE, 'retry-after': '1' },
    body: { error: 'temporarily_unavailable', error_description: 'the service cannot store this now; retry' },
    unexpected: true,
  },
  {
    name: 'REVOKD_STORE_CONFLICT is 503 with Retry-After',
    error: new RevokdError('REVOKD_STORE_CONFLICT', 'serialization failure'),
    status: 503,
    headers: { ...NO_STORE, 'retry-after': '1' },
    body: { error: 'temporarily_unavailable', error_description: 'the service cannot store this now; retry' },
    unexpected: true,
  },
  {
    name: 'REVOKD_NOT_FOUND is 404 not_found',
    error: new RevokdError('REVOKD_NOT_FOUND', 'client app not found'),
    status: 404,
    headers: NO_STORE,
    body: { error: 'not_found', error_description: 'client app not found' },
    unexpected: false,
  },
  {
    name: 'REVOKD_INVALID_ARGUMENT is 400 invalid_request',
    error: new RevokdError('REVOKD_INVALID_ARGUMENT', 'reason must be one of …'),
    status: 400,
    headers: NO_STORE,
    body: { error: 'invalid_request', error_description: 'reason must be one of …' },
    unexpected: false,
  },
  {
    name: 'another RevokdError is 500 server_error without its message',
    error: new RevokdError('REVOKD_NO_SIGNING_KEY', 'no active key in /etc/revokd/keys'),
    status: 500,
    headers: NO_STORE,
    body: { error: 'server_error', error_description: 'internal error' },
    unexpected: true,
  },
  {
    name: "Fastify's FST_ERR_CTP_BODY_TOO_LARGE is 413 invalid_request",
    error: fastifyError('FST_ERR_CTP_BODY_TOO_LARGE', 413),
    status: 413,
    headers: NO_STORE,
    body: { error: 'invalid_request', error_description: 'request body too large' },
    unexpected: false,
  },
  {
    name: "Fastify's FST_ERR_CTP_INVALID_MEDIA_TYPE is 400 invalid_request",
    error: fastifyError('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415),
    status: 400,
    headers: NO_STORE,
    body: { error: 'invalid_request', error_description: 'unsupported content type' },
    unexpected: false,
  },
  {
    name: "Fastify's FST_ERR_CTP_INVALID_JSON_BODY is 400 invalid_request",
    error: fastifyError('FST_ERR_CTP_INVALID_JSON_BODY', 400),
    status: 400,
    headers: NO_STORE,
    body: { error: 'invalid_request', error_description: 'request body is not valid JSON' },
    unexpected: false,
  },
  {
    name: 'a SyntaxError (body parser) is 400 invalid_request',
    error: new SyntaxError('Unexpected token } in JSON at position 12'),
    status: 400,
    headers: NO_STORE,
    body: { error: 'invalid_request', error_description: 'request body is malformed' },
    unexpected: false,
  },
  {
    name: 'another 4xx framework error keeps its status, with a generic description',
    error: fastifyError('FST_ERR_SOMETHING', 431, 'header fields too large: secret-cookie=abc'),
    status: 431,
    headers: NO_STORE,
    body: { error: 'invalid_request', error_description: 'malformed request' },
    unexpected: false,
  },
  {
    name: 'a 5xx framework error is 500 server_error',
    error: fastifyError('FST_ERR_SOMETHING', 502, 'upstream at 10.0.0.7 failed'),
    status: 500,
    headers: NO_STORE,
    body: { error: 'server_error', error_description: 'internal error' },
    unexpected: true,
  },
  {
    name: 'an unexpected Error is 500 server_error never leaking its message',
    error: new TypeError("Cannot read properties of undefined (reading 'secretHash')"),
    status: 500,
    headers: NO_STORE,
    body: { error: 'server_error', error_description: 'internal error' },
    unexpected: true,
  },
  {
    name: 'a thrown non-Error is 500 server_error',
    error: 'boom',
    status: 500,
    headers: NO_STORE,
    body: { error: 'server_error', error_description: 'internal error' },
    unexpected: true,
  },
  {
    name: 'a thrown undefined is 500 server_error',
    error: undefined,
    status: 500,
    headers: NO_STORE,
    body: { error: 'server_error', error_description: 'internal error' },
    unexpected: false,
  },
];

describe('toWireError', () => {
  for (const c of cases) {
    test(c.name, () => {
      const wire = toWireError(c.error, c.scheme);
      assert.equal(wire.status, c.status);
      assert.deepEqual(wire.body, c.body);
      assert.deepEqual(wire.headers, c.headers);
      assert.equal(wire.unexpected, c.unexpected ? c.error : undefined);
    });
  }

  test('the internal message of an unexpected error appears nowhere in the response', () => {
    const secret = 'password=hunter2 at db.internal:5432';
    for (const error of [new Error(secret), new RevokdError('REVOKD_CONFIG_INVALID', secret)]) {
      const wire = toWireError(error);
      assert.equal(JSON.stringify({ body: wire.body, headers: wire.headers }).includes('hunter2'), false);
    }
  });

  test('the cause of an OAuthError is not serialised', () => {
    const wire = toWireError(
      new OAuthError('invalid_grant', 'grant is invalid', { cause: new Error('row 42') }),
    );
    assert.deepEqual(Object.keys(wire.body).sort(), ['error', 'error_description']);
    assert.equal(JSON.stringify(wire).includes('row 42'), false);
  });

  test('a 401 other than invalid_client on a Basic endpoint gets a bare Basic challenge', () => {
    const wire = toWireError(new OAuthError('invalid_token', 'bad token'), 'Basic');
    assert.equal(wire.headers['www-authenticate'], 'Basic realm="revokd"');
  });
});

describe('challenge', () => {
  test('quotes every parameter after the realm', () => {
    assert.equal(
      challenge('Bearer', { error: 'invalid_token' }),
      'Bearer realm="revokd", error="invalid_token"',
    );
  });

  test('with no parameters is the scheme and the realm', () => {
    assert.equal(challenge('Basic', {}), 'Basic realm="revokd"');
  });
});
