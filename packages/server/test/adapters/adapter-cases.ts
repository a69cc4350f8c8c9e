/**
 * The one behavioural suite every framework adapter runs (as hono runs one suite against every router): a real
 * revokd server on a loopback port, real guards following its revocation stream, and the adapter's real framework
 * app on another loopback port, driven over HTTP with fetch. Each adapter's test file only mounts the routes of
 * {@link routeTable} in its framework and calls {@link runAdapterSuite}.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { type Guard, ISSUED_AT_US_CLAIM } from '@revokd/guard';
import type { ChallengeOptions, GuardMiddlewareOptions, RevokdAuth } from '@revokd/guard/node';
import { CuttableProxy } from '../support/cuttable-proxy.ts';
import { guardFor } from '../support/guard-harness.ts';
import { encodeForm, startTestServer, type TestServer } from '../support/harness.ts';

/** Propagation bound asserted here: far above the expected milliseconds, low enough to catch polling. */
const PROPAGATION_BOUND_MS = 2000;
const REALM = 'api';

/** Options of the guard middleware, or of `requireScope` when a route has one. */
export interface RouteSpec {
  readonly path: string;
  /** Which guard of the fixture protects the route. */
  readonly guard: Guard;
  /** Options of the guard middleware; undefined: called with no options at all. */
  readonly options: GuardMiddlewareOptions | undefined;
  /** A `requireScope(scope, options)` step after the guard middleware (or, without middleware chains, `scopes`). */
  readonly requireScope?: { readonly scope: string; readonly options: ChallengeOptions };
}

const describe = { realm: REALM, describeErrors: true } as const;

/**
 * The routes every adapter's app serves, all `GET`, each answering an accepted request with `200` and
 * `whoami(auth)` as JSON, where `auth` is what the framework's request slot holds. The adapter mounts them in
 * any idiomatic way (a plugin, a hook, a wrapper) as long as each gets exactly the protection described.
 *
 * | path | guard (its stale policy) | middleware options |
 * |---|---|---|
 * | `/me` | fresh | realm `api`, errors described |
 * | `/read` | fresh | `scopes: ['read']` |
 * | `/write` | fresh | then `requireScope('write')` |
 * | `/plain` | fresh | none (default realm, no descriptions) |
 * | `/stale/reject` | strict (`reject`) | inherits: fails closed |
 * | `/stale/accept` | strict (`reject`) | `stalePolicy: 'accept'`: serves, marked stale |
 * | `/lenient/accept` | lenient (`accept`) | inherits: serves, marked stale |
 * | `/lenient/reject` | lenient (`accept`) | `stalePolicy: 'reject'`: fails closed |
 */
export function routeTable({ guard, strictGuard, lenientGuard }: AdapterFixture): readonly RouteSpec[] {
  return [
    { path: '/me', guard, options: describe },
    { path: '/read', guard, options: { ...describe, scopes: ['read'] } },
    { path: '/write', guard, options: describe, requireScope: { scope: 'write', options: describe } },
    { path: '/plain', guard, options: undefined },
    { path: '/stale/reject', guard: strictGuard, options: describe },
    { path: '/stale/accept', guard: strictGuard, options: { ...describe, stalePolicy: 'accept' } },
    { path: '/lenient/accept', guard: lenientGuard, options: describe },
    { path: '/lenient/reject', guard: lenientGuard, options: { ...describe, stalePolicy: 'reject' } },
  ];
}

/** What each protected route answers: the claims the handler saw through the framework's request slot. */
export function whoami(auth: RevokdAuth | undefined): Whoami {
  if (auth === undefined) throw new Error('the handler ran without an accepted token');
  return {
    sub: auth.claims.sub,
    client_id: auth.claims.client_id,
    scope: auth.claims.scope ?? null,
    stale: auth.stale === true,
  };
}

export interface Whoami {
  readonly sub: string;
  readonly client_id: string;
  readonly scope: string | null;
  readonly stale: boolean;
}

export interface AdapterFixture {
  /** Follows the revocation stream directly: always fresh. */
  readonly guard: Guard;
  /** `stalePolicy: 'reject'`, `maxStalenessMs: 100`; follows the stream through a proxy the suite cuts. */
  readonly strictGuard: Guard;
  /** `stalePolicy: 'accept'`, otherwise like `strictGuard`. */
  readonly lenientGuard: Guard;
}

export interface MountedApp {
  /** Base URL of the framework app, e.g. `http://127.0.0.1:4312`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Builds the adapter's app serving `routes` (see {@link routeTable}) and listens on 127.0.0.1, port 0. */
export type MountApp = (routes: readonly RouteSpec[]) => Promise<MountedApp>;

interface CaseEnv {
  readonly server: TestServer;
  /** Base URL of the revokd server. */
  readonly serverUrl: string;
  readonly strictGuard: Guard;
  readonly lenientGuard: Guard;
  /** Cuts the revocation stream of the strict and lenient guards for good. */
  cutStaleFeed(): Promise<void>;
  get(path: string, authorization?: string): Promise<Answer>;
  diagnostic(message: string): void;
}

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

interface AdapterCase {
  readonly name: string;
  run(env: CaseEnv): Promise<void>;
}

const bearer = (token: string) => `Bearer ${token}`;

function assertAccepted(answer: Answer, expected: Partial<Whoami>): void {
  assert.equal(answer.status, 200, answer.text);
  const body = JSON.parse(answer.text) as Whoami;
  for (const [key, value] of Object.entries(expected)) {
    assert.deepEqual(body[key as keyof Whoami], value, `${key} seen by the handler`);
  }
}

/** A missing token: 401, a challenge without an error code (RFC 6750 §3.1), and nothing else to say. */
function assertBareChallenge(answer: Answer, realm = REALM): void {
  assert.equal(answer.status, 401);
  assert.equal(answer.headers.get('www-authenticate'), `Bearer realm="${realm}"`);
  assert.equal(answer.text, '');
}

function assertJsonBody(answer: Answer, body: Record<string, string>): void {
  assert.match(answer.headers.get('content-type') ?? '', /^application\/json(;|$)/);
  assert.equal(answer.headers.get('cache-control'), 'no-store');
  assert.deepEqual(JSON.parse(answer.text), body);
}

/** 401 `invalid_token`; the routes describe errors, so the reason is in the body and the challenge. */
function assertInvalidToken(answer: Answer, reason: string): void {
  assert.equal(answer.status, 401, answer.text);
  assert.equal(
    answer.headers.get('www-authenticate'),
    `Bearer realm="${REALM}", error="invalid_token", error_description="${reason}"`,
  );
  assertJsonBody(answer, { error: 'invalid_token', error_description: reason });
}

function assertInsufficientScope(answer: Answer, scope: string): void {
  assert.equal(answer.status, 403, answer.text);
  assert.equal(
    answer.headers.get('www-authenticate'),
    `Bearer realm="${REALM}", scope="${scope}", error="insufficient_scope"`,
  );
  assertJsonBody(answer, {
    error: 'insufficient_scope',
    error_description: 'The access token does not grant the required scope',
  });
}

/** Polls until `predicate` holds; returns how long it took, in ms. */
async function within(boundMs: number, what: string, predicate: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await predicate()) return performance.now() - started;
    if (performance.now() - started > boundMs) assert.fail(`${what}: not within ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The payload of a compact JWS, unverified. */
function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

/** A token signed with the server's real key, like `token` but with `changes`. */
async function resign(server: TestServer, token: string, changes: Record<string, unknown>): Promise<string> {
  return server.runtime.keyring.sign({ ...payloadOf(token), jti: randomUUID(), ...changes }, 'at+jwt');
}

export const ADAPTER_CASES: readonly AdapterCase[] = [
  {
    name: 'a valid token reaches the handler, whose request slot holds the claims',
    async run({ server, get }) {
      const { access_token: token } = await server.login('alice');
      assertAccepted(await get('/me', bearer(token)), {
        sub: 'alice',
        client_id: 'app',
        scope: 'read write',
        stale: false,
      });
      // The scheme is case-insensitive (RFC 7235 §2.1).
      assertAccepted(await get('/me', `bearer ${token}`), { sub: 'alice' });
    },
  },
  {
    name: 'no credentials, or another scheme: 401 with a bare Bearer challenge (RFC 6750 §3.1)',
    async run({ get }) {
      assertBareChallenge(await get('/me'));
      assertBareChallenge(await get('/me', 'Basic YXBwOnNlY3JldA=='));
      assertBareChallenge(await get('/plain'), 'revokd');
    },
  },
  {
    name: 'a malformed Authorization header or a garbage token: 401 invalid_token',
    async run({ get }) {
      for (const header of [
        'Bearer',
        'Bearer ',
        'Bearer a b',
        'Bearer ###',
        'Bearer garbage',
        'Bearer a.b.c',
      ]) {
        assertInvalidToken(await get('/me', header), 'malformed');
      }
    },
  },
  {
    name: 'an expired token, or one for another audience, signed with the real key: 401 invalid_token',
    async run({ server, get }) {
      const { access_token: token } = await server.login('bob');
      const iat = Math.floor(Date.now() / 1000) - 7200;
      const expired = await resign(server, token, { iat, exp: iat + 3600, [ISSUED_AT_US_CLAIM]: iat * 1e6 });
      assertInvalidToken(await get('/me', bearer(expired)), 'expired');
      const foreign = await resign(server, token, { aud: 'https://other.example.com' });
      assertInvalidToken(await get('/me', bearer(foreign)), 'aud_invalid');
    },
  },
  {
    name: 'without describeErrors the reason stays server-side',
    async run({ server, get }) {
      const { access_token: token } = await server.login('bob');
      assertAccepted(await get('/plain', bearer(token)), { sub: 'bob' });
      const foreign = await resign(server, token, { aud: 'https://other.example.com' });
      const answer = await get('/plain', bearer(foreign));
      assert.equal(answer.status, 401);
      assert.equal(answer.headers.get('www-authenticate'), 'Bearer realm="revokd", error="invalid_token"');
      assertJsonBody(answer, { error: 'invalid_token', error_description: 'The access token is invalid' });
    },
  },
  {
    name: "a token revoked through the server's /revoke is refused within the bound",
    async run({ server, serverUrl, get, diagnostic }) {
      const { access_token: token } = await server.login('carol');
      assertAccepted(await get('/me', bearer(token)), { sub: 'carol' });
      const revoked = await fetch(`${serverUrl}/revoke`, {
        method: 'POST',
        headers: { authorization: server.client.basic, 'content-type': 'application/x-www-form-urlencoded' },
        body: encodeForm({ token }),
      });
      assert.equal(revoked.status, 200, await revoked.text());
      const elapsed = await within(
        PROPAGATION_BOUND_MS,
        'the revocation reaches the route',
        async () => (await get('/me', bearer(token))).status === 401,
      );
      diagnostic(`revoke response → 401 at the route: ${elapsed.toFixed(1)} ms`);
      assertInvalidToken(await get('/me', bearer(token)), 'revoked');
    },
  },
  {
    name: 'a subject revocation refuses the old token; a token issued right after is accepted',
    async run({ server, get }) {
      const before = await server.login('dave');
      const bystander = await server.login('erin');
      assertAccepted(await get('/me', bearer(before.access_token)), { sub: 'dave' });
      const response = await server.app.inject({
        method: 'POST',
        url: '/admin/subjects/dave/revoke',
        headers: { authorization: `Bearer ${await server.adminToken()}`, 'content-type': 'application/json' },
        payload: { reason: 'password_changed' },
      });
      assert.equal(response.statusCode, 200, response.body);
      const after = await server.login('dave');
      await within(
        PROPAGATION_BOUND_MS,
        'the subject rule reaches the route',
        async () => (await get('/me', bearer(before.access_token))).status === 401,
      );
      assertInvalidToken(await get('/me', bearer(before.access_token)), 'revoked');
      assertAccepted(await get('/me', bearer(after.access_token)), { sub: 'dave' });
      assertAccepted(await get('/me', bearer(bystander.access_token)), { sub: 'erin' });
    },
  },
  {
    name: 'a missing scope: 403 insufficient_scope naming it, through the option and through requireScope',
    async run({ server, get }) {
      const readOnly = await server.login('frank', { scope: 'read' });
      const writeOnly = await server.login('frank', { scope: 'write' });
      const both = await server.login('frank');
      assertAccepted(await get('/read', bearer(readOnly.access_token)), { sub: 'frank', scope: 'read' });
      assertInsufficientScope(await get('/read', bearer(writeOnly.access_token)), 'read');
      assertAccepted(await get('/write', bearer(writeOnly.access_token)), { scope: 'write' });
      assertInsufficientScope(await get('/write', bearer(readOnly.access_token)), 'write');
      assertAccepted(await get('/read', bearer(both.access_token)), { scope: 'read write' });
      assertAccepted(await get('/write', bearer(both.access_token)), { scope: 'read write' });
      // Scopes match whole scope tokens, not substrings.
      const lookalike = await server.addClient('lookalike', { scopes: ['reader', 'xread', 'writes'] });
      const near = await server.login('frank', { client: lookalike });
      assert.equal(near.scope, 'reader xread writes');
      assertInsufficientScope(await get('/read', bearer(near.access_token)), 'read');
      assertInsufficientScope(await get('/write', bearer(near.access_token)), 'write');
      // Authentication comes first: no token is 401, not 403.
      assertBareChallenge(await get('/read'));
      assertBareChallenge(await get('/write'));
    },
  },
  {
    name: 'a stale guard: 503 where the route fails closed, 200 marked stale where it accepts, whatever the guard default',
    async run({ server, strictGuard, lenientGuard, cutStaleFeed, get }) {
      const { access_token: token } = await server.login('gina');
      await cutStaleFeed();
      await within(
        PROPAGATION_BOUND_MS,
        'the guards turn stale',
        async () => strictGuard.health().state === 'stale' && lenientGuard.health().state === 'stale',
      );

      for (const path of ['/stale/reject', '/lenient/reject']) {
        const closed = await get(path, bearer(token));
        assert.equal(closed.status, 503, `${path}: ${closed.text}`);
        assert.equal(closed.headers.get('retry-after'), '5');
        assert.equal(closed.headers.get('www-authenticate'), null);
        assertJsonBody(closed, { error: 'temporarily_unavailable', error_description: 'stale' });
      }
      for (const path of ['/stale/accept', '/lenient/accept']) {
        assertAccepted(await get(path, bearer(token)), { sub: 'gina', stale: true });
      }

      // Staleness never masks a missing or invalid token.
      for (const path of ['/stale/reject', '/stale/accept', '/lenient/reject', '/lenient/accept']) {
        assertBareChallenge(await get(path));
        assertInvalidToken(await get(path, 'Bearer garbage'), 'malformed');
      }
    },
  },
];

/**
 * Registers one test for `adapter`: starts the server, the guards and the app mounted by `mount`, then runs every
 * case of {@link ADAPTER_CASES} in order as a subtest. Everything is closed in `t.after`.
 */
export function runAdapterSuite(adapter: string, mount: MountApp): void {
  test(`${adapter} adapter`, async (t) => {
    const server = await startTestServer();
    t.after(() => server.close());
    await server.app.listen({ port: 0, host: '127.0.0.1' });
    const serverUrl = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;

    const proxy = new CuttableProxy(Number(new URL(serverUrl).port));
    t.after(() => proxy.cut());
    const proxyUrl = await proxy.start();

    const guard = guardFor(server, serverUrl);
    t.after(() => guard.close());
    const stale = { maxStalenessMs: 100 };
    const strictGuard = guardFor(server, proxyUrl, {
      jwksUri: `${serverUrl}/jwks.json`,
      ...stale,
      stalePolicy: 'reject',
    });
    t.after(() => strictGuard.close());
    const lenientGuard = guardFor(server, proxyUrl, {
      jwksUri: `${serverUrl}/jwks.json`,
      ...stale,
      stalePolicy: 'accept',
    });
    t.after(() => lenientGuard.close());
    await Promise.all([guard.ready(), strictGuard.ready(), lenientGuard.ready()]);

    const app = await mount(routeTable({ guard, strictGuard, lenientGuard }));
    t.after(() => app.close());

    const env: CaseEnv = {
      server,
      serverUrl,
      strictGuard,
      lenientGuard,
      cutStaleFeed: () => proxy.cut(),
      async get(path, authorization) {
        const response = await fetch(`${app.url}${path}`, {
          headers: authorization === undefined ? {} : { authorization },
        });
        return { status: response.status, headers: response.headers, text: await response.text() };
      },
      diagnostic: (message) => t.diagnostic(`${adapter}: ${message}`),
    };
    for (const c of ADAPTER_CASES) {
      await t.test(c.name, () => c.run(env));
    }
  });
}
