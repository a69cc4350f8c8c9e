import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OAuthError } from '../../src/core/errors.ts';
import { FormParams } from '../../src/http/form.ts';

/** Asserts `fn` throws an OAuthError with this code whose description mentions `mentions`. */
function assertOAuthError(fn: () => unknown, code: string, mentions?: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof OAuthError, `expected an OAuthError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (mentions !== undefined) assert.match(error.description, new RegExp(mentions));
    return true;
  });
}

describe('FormParams: decoding', () => {
  test('decodes form-urlencoded values: + is a space, %xx is a byte of UTF-8', () => {
    const form = FormParams.parse('a=hello+world&b=%C3%A9t%C3%A9&c=x%2By%26z%3D');
    assert.equal(form.optional('a'), 'hello world');
    assert.equal(form.optional('b'), 'été');
    assert.equal(form.optional('c'), 'x+y&z=');
  });

  test('an empty body has no parameters', () => {
    const form = FormParams.parse('');
    assert.equal(form.has('grant_type'), false);
    assert.equal(form.optional('grant_type'), undefined);
  });

  test('FormParams.empty() has no parameters', () => {
    assert.equal(FormParams.empty().has('scope'), false);
    assert.deepEqual(FormParams.empty().all('resource'), []);
  });
});

describe('FormParams: repeated parameters', () => {
  test('optional() rejects a repeated parameter with invalid_request naming it', () => {
    assertOAuthError(() => FormParams.parse('token=a&token=b').optional('token'), 'invalid_request', 'token');
  });

  test('required() rejects a repeated parameter even when the values are equal', () => {
    assertOAuthError(
      () => FormParams.parse('grant_type=x&grant_type=x').required('grant_type'),
      'invalid_request',
      'grant_type',
    );
  });

  test('a repeated parameter is rejected even if one copy is empty', () => {
    assertOAuthError(() => FormParams.parse('scope=&scope=read').scope(), 'invalid_request', 'scope');
  });

  test('all() returns every value of a repeatable parameter, in order', () => {
    const form = FormParams.parse('resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example');
    assert.deepEqual(form.all('resource'), ['https://a.example', 'https://b.example']);
  });

  test('all() drops empty values and returns [] for an absent parameter', () => {
    const form = FormParams.parse('audience=&audience=api&audience=');
    assert.deepEqual(form.all('audience'), ['api']);
    assert.deepEqual(form.all('resource'), []);
  });

  test('assertSingleValued() rejects any repeated parameter, naming it', () => {
    assertOAuthError(() => FormParams.parse('a=1&b=2&b=3').assertSingleValued(), 'invalid_request', 'b');
  });

  test('assertSingleValued() allows the parameters named in except', () => {
    const form = FormParams.parse('resource=a&resource=b&token=t');
    assert.doesNotThrow(() => form.assertSingleValued(['resource']));
    assertOAuthError(
      () => FormParams.parse('resource=a&resource=b&token=t&token=u').assertSingleValued(['resource']),
      'invalid_request',
      'token',
    );
  });
});

describe('FormParams: empty means absent', () => {
  test('optional() returns undefined for an empty value', () => {
    assert.equal(FormParams.parse('token=').optional('token'), undefined);
  });

  test('has() still reports a parameter sent empty', () => {
    assert.equal(FormParams.parse('token=').has('token'), true);
  });

  test('required() rejects an empty value as missing', () => {
    assertOAuthError(
      () => FormParams.parse('token=').required('token'),
      'invalid_request',
      'token is required',
    );
  });

  test('required() rejects an absent parameter, naming it', () => {
    assertOAuthError(() => FormParams.parse('a=1').required('token'), 'invalid_request', 'token is required');
  });

  test('required() returns a present value', () => {
    assert.equal(FormParams.parse('token=abc').required('token'), 'abc');
  });

  test('an empty scope is absent', () => {
    assert.equal(FormParams.parse('scope=').scope(), undefined);
    assert.equal(FormParams.parse('').scope(), undefined);
  });
});

describe('FormParams: scope syntax (RFC 6749 §3.3)', () => {
  const valid: ReadonlyArray<[body: string, scopes: string[]]> = [
    ['scope=read', ['read']],
    ['scope=read+write', ['read', 'write']],
    ['scope=read%20write%20admin', ['read', 'write', 'admin']],
    ['scope=revokd%3Aadmin+https%3A%2F%2Fapi.example%2Fx', ['revokd:admin', 'https://api.example/x']],
    ['scope=%21%23%5B%5D%7E', ['!#[]~']],
  ];
  for (const [body, scopes] of valid) {
    test(`accepts ${body} as ${JSON.stringify(scopes)}`, () => {
      assert.deepEqual(FormParams.parse(body).scope(), scopes);
    });
  }

  const invalid: ReadonlyArray<[body: string, why: string]> = [
    ['scope=read++write', 'two spaces in a row'],
    ['scope=+read', 'a leading space'],
    ['scope=read+', 'a trailing space'],
    ['scope=+', 'only a space'],
    ['scope=read%09write', 'a tab as separator'],
    ['scope=a%22b', 'a double quote'],
    ['scope=a%5Cb', 'a backslash'],
    ['scope=r%C3%A9ad', 'a non-ASCII character'],
    ['scope=read%0Awrite', 'a newline'],
    ['scope=a%7Fb', 'DEL'],
  ];
  for (const [body, why] of invalid) {
    test(`rejects a scope with ${why} as invalid_scope`, () => {
      assertOAuthError(() => FormParams.parse(body).scope(), 'invalid_scope');
    });
  }
});
