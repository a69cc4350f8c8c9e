/**
 * What every adapter promises before any request: options are validated when the middleware is created (a
 * misspelt option is refused, never ignored), and importing the guard or an adapter loads no framework.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createGuard, type Guard, isGuardError } from '@revokd/guard';
import * as express from '@revokd/guard/express';
import * as fastify from '@revokd/guard/fastify';
import * as hono from '@revokd/guard/hono';
import * as node from '@revokd/guard/node';

type Factory = (guard: Guard, options: unknown) => unknown;

const FACTORIES: Record<string, Factory> = {
  expressGuard: (guard, options) => express.expressGuard(guard, options as express.GuardMiddlewareOptions),
  fastifyGuard: (guard, options) => fastify.fastifyGuard(guard, options as fastify.GuardMiddlewareOptions),
  honoGuard: (guard, options) => hono.honoGuard(guard, options as hono.GuardMiddlewareOptions),
  withGuard: (guard, options) => node.withGuard(guard, () => {}, options as node.GuardMiddlewareOptions),
  guardRequest: (guard, options) =>
    node.guardRequest(guard, { headers: {} } as IncomingMessage, options as node.GuardMiddlewareOptions),
};

const REQUIRE_SCOPE: Record<string, (scopes: unknown, options?: unknown) => unknown> = {
  'express requireScope': (s, o) => express.requireScope(s as string, o as express.ChallengeOptions),
  'fastify requireScope': (s, o) => fastify.requireScope(s as string, o as fastify.ChallengeOptions),
  'hono requireScope': (s, o) => hono.requireScope(s as string, o as hono.ChallengeOptions),
};

const BAD_OPTIONS: ReadonlyArray<readonly [unknown, RegExp]> = [
  [{ scope: ['read'] }, /unknown option "scope"/],
  [{ stalePolicy: 'sometimes' }, /stalePolicy/],
  [{ scopes: [] }, /scopes must be a non-empty array/],
  [{ scopes: 'read' }, /scopes must be a non-empty array/],
  [{ scopes: ['read write'] }, /not an RFC 6749 scope token/],
  [{ scopes: ['a"b'] }, /not an RFC 6749 scope token/],
  [{ retryAfterSeconds: -1 }, /retryAfterSeconds/],
  [{ retryAfterSeconds: 1.5 }, /retryAfterSeconds/],
  [{ realm: 42 }, /realm must be a string/],
  [{ describeErrors: 'yes' }, /describeErrors must be a boolean/],
  ['api', /options must be an object/],
];

function assertConfigError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isGuardError(error), `a GuardError, not ${String(error)}`);
    assert.equal(error.code, 'REVOKD_GUARD_CONFIG');
    assert.match(error.message, message);
    return true;
  });
}

test('every adapter validates its options when it is created', async (t) => {
  // A real guard; nothing listens on its server, and nothing here needs it to.
  const guard = createGuard({
    issuer: 'http://127.0.0.1:9',
    audience: 'https://api.example.com',
    clientId: 'api',
    clientSecret: 'secret',
    reconnect: { initialDelayMs: 1000, maxDelayMs: 1000 },
  });
  t.after(() => guard.close());

  for (const [name, create] of Object.entries(FACTORIES)) {
    for (const [options, message] of BAD_OPTIONS) {
      assertConfigError(() => create(guard, options), message);
    }
    assertConfigError(() => create({} as Guard, {}), /guard must be a guard/);
    // Valid options, including every key, are accepted.
    const valid = {
      realm: 'api',
      describeErrors: true,
      scopes: ['read'],
      stalePolicy: 'accept',
      retryAfterSeconds: 0,
    };
    assert.doesNotThrow(() => create(guard, valid), name);
    assert.doesNotThrow(() => create(guard, undefined), name);
  }

  for (const [name, create] of Object.entries(REQUIRE_SCOPE)) {
    assertConfigError(() => create(''), /not an RFC 6749 scope token/);
    assertConfigError(() => create([]), /non-empty array/);
    assertConfigError(() => create('read', { scopes: ['read'] }), /unknown option "scopes"/);
    assert.doesNotThrow(() => create('read'), name);
    assert.doesNotThrow(() => create(['read', 'write'], { realm: 'api', describeErrors: false }), name);
  }

  assertConfigError(() => node.withGuard(guard, 'handler' as never), /handler must be a function/);
  await assert.rejects(
    async () => fastify.revokdFastify({} as never, { guard, scope: 'read' } as never),
    (error: unknown) => isGuardError(error) && /unknown option "scope"/.test(error.message),
  );
});

test('importing @revokd/guard or any adapter loads no framework', async () => {
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({
      resolve(specifier, context, next) {
        if (/^(express|fastify|hono|@hono\\/|@fastify\\/)/.test(specifier)) loaded.push(specifier);
        return next(specifier, context);
      },
    });
    await import('@revokd/guard');
    for (const adapter of ['express', 'fastify', 'hono', 'node']) await import('@revokd/guard/' + adapter);
    process.stdout.write(JSON.stringify(loaded));
  `;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script],
    { cwd: new URL('../../../guard/', import.meta.url) },
  );
  assert.deepEqual(JSON.parse(stdout), []);
});

test('the guard package lists frameworks only as optional peers, and exports each adapter', () => {
  const manifest = JSON.parse(readFileSync(new URL('../../../guard/package.json', import.meta.url), 'utf8'));
  assert.deepEqual(Object.keys(manifest.dependencies ?? {}), ['jose']);
  for (const framework of ['express', 'fastify', 'hono']) {
    assert.equal(manifest.peerDependenciesMeta?.[framework]?.optional, true, framework);
  }
  for (const subpath of ['./express', './fastify', './hono', './node']) {
    assert.equal(manifest.exports[subpath], `./src/adapters/${subpath.slice(2)}.ts`);
  }
});
