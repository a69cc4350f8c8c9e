import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FastifyRequest } from 'fastify';
import { OAuthError } from '../../src/core/errors.ts';
import { readClientCredentials } from '../../src/http/client-auth.ts';
import { FormParams } from '../../src/http/form.ts';

function request(authorization?: string): FastifyRequest {
  const headers: Record<string, string> = {};
  if (authorization !== undefined) headers.authorization = authorization;
  return { headers } as unknown as FastifyRequest;
}

/** `Basic base64(raw)`, where `raw` is already form-urlencoded by the caller. */
function basic(raw: string): string {
  return `Basic ${Buffer.from(raw, 'utf8').toString('base64')}`;
}

function read(authorization: string | undefined, body = '') {
  return readClientCredentials(request(authorization), FormParams.parse(body));
}

describe('readClientCredentials: accepted credentials', () => {
  const cases: ReadonlyArray<{
    name: string;
    authorization?: string;
    body?: string;
    expected: { clientId: string; clientSecret: string };
  }> = [
    {
      name: 'Basic credentials',
      authorization: basic('app:s3cret'),
      expected: { clientId: 'app', clientSecret: 's3cret' },
    },
    {
      name: "Basic parts are form-urlencoded: '+' is a space",
      authorization: basic('my+app:a+b'),
      expected: { clientId: 'my app', clientSecret: 'a b' },
    },
    {
      name: 'Basic parts are form-urlencoded: %xx escapes, including an encoded colon in the id',
      authorization: basic('urn%3Aapp:p%2Bw%25d%3A%C3%A9'),
      expected: { clientId: 'urn:app', clientSecret: 'p+w%d:é' },
    },
    {
      name: 'a colon in the secret needs no escaping: the first colon separates',
      authorization: basic('app:a:b:c'),
      expected: { clientId: 'app', clientSecret: 'a:b:c' },
    },
    {
      name: 'the scheme name is case-insensitive',
      authorization: `basic ${Buffer.from('app:s3cret').toString('base64')}`,
      expected: { clientId: 'app', clientSecret: 's3cret' },
    },
    {
      name: 'Basic with a matching client_id in the body',
      authorization: basic('app:s3cret'),
      body: 'client_id=app',
      expected: { clientId: 'app', clientSecret: 's3cret' },
    },
    {
      name: 'Basic with an empty client_secret in the body (empty means absent)',
      authorization: basic('app:s3cret'),
      body: 'client_secret=',
      expected: { clientId: 'app', clientSecret: 's3cret' },
    },
    {
      name: 'body credentials (client_secret_post)',
      body: 'client_id=app&client_secret=s3cret',
      expected: { clientId: 'app', clientSecret: 's3cret' },
    },
    {
      name: 'body credentials are form-decoded',
      body: 'client_id=my+app&client_secret=p%2Bw%3D',
      expected: { clientId: 'my app', clientSecret: 'p+w=' },
    },
  ];
  for (const { name, authorization, body, expected } of cases) {
    test(`reads ${name}`, () => {
      assert.deepEqual(read(authorization, body), expected);
    });
  }
});

describe('readClientCredentials: refused credentials', () => {
  const cases: ReadonlyArray<{ name: string; authorization?: string; body?: string; code: string }> = [
    {
      name: 'a secret in both the header and the body is invalid_request',
      authorization: basic('app:s3cret'),
      body: 'client_id=app&client_secret=s3cret',
      code: 'invalid_request',
    },
    {
      name: 'a body client_secret next to a header is invalid_request even without body client_id',
      authorization: basic('app:s3cret'),
      body: 'client_secret=other',
      code: 'invalid_request',
    },
    {
      name: 'a body client_id that differs from the header is invalid_request',
      authorization: basic('app:s3cret'),
      body: 'client_id=other',
      code: 'invalid_request',
    },
    {
      name: 'malformed base64 is invalid_client',
      authorization: 'Basic !!!not-base64!!!',
      code: 'invalid_client',
    },
    {
      name: 'base64 with a space inside is invalid_client',
      authorization: 'Basic YXBw OnMzY3JldA==',
      code: 'invalid_client',
    },
    {
      name: 'decoded credentials without a colon are invalid_client',
      authorization: basic('app-s3cret'),
      code: 'invalid_client',
    },
    { name: 'an empty client id is invalid_client', authorization: basic(':s3cret'), code: 'invalid_client' },
    {
      name: 'a bad %-escape is invalid_client',
      authorization: basic('app:%E0%A4%A'),
      code: 'invalid_client',
    },
    {
      name: 'a Bearer header is invalid_client',
      authorization: 'Bearer abc.def.ghi',
      code: 'invalid_client',
    },
    { name: 'Basic without credentials is invalid_client', authorization: 'Basic', code: 'invalid_client' },
    { name: 'an empty Authorization header is invalid_client', authorization: '', code: 'invalid_client' },
    { name: 'no credentials at all is invalid_client', code: 'invalid_client' },
    {
      name: 'a body client_id without secret is invalid_client',
      body: 'client_id=app',
      code: 'invalid_client',
    },
    {
      name: 'a body client_secret without client_id is invalid_client',
      body: 'client_secret=s3cret',
      code: 'invalid_client',
    },
    {
      name: 'an empty body client_secret is invalid_client',
      body: 'client_id=app&client_secret=',
      code: 'invalid_client',
    },
    {
      name: 'a repeated body client_id is invalid_request',
      body: 'client_id=app&client_id=app&client_secret=s3cret',
      code: 'invalid_request',
    },
  ];
  for (const { name, authorization, body, code } of cases) {
    test(name, () => {
      assert.throws(
        () => read(authorization, body),
        (error: unknown) => error instanceof OAuthError && error.code === code,
      );
    });
  }

  test('a malformed header never echoes the credentials in the error', () => {
    const header = basic('app:%ZZtop-secret');
    assert.throws(
      () => read(header),
      (error: unknown) =>
        error instanceof OAuthError &&
        !error.message.includes('top-secret') &&
        !error.description.includes('top-secret'),
    );
  });
});
