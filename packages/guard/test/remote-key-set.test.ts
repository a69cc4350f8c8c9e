import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { discoverJwksUri, metadataUrl, RemoteKeySet } from '../src/verify/remote-key-set.ts';
import { makeKey } from './support/keys.ts';

function serve(routes: Record<string, unknown>) {
  const requests: string[] = [];
  const fetch = (async (input: string | URL) => {
    const url = String(input);
    requests.push(url);
    if (!(url in routes)) return new Response('{}', { status: 404 });
    return new Response(JSON.stringify(routes[url]), { headers: { 'content-type': 'application/json' } });
  }) as typeof globalThis.fetch;
  return { fetch, requests };
}

describe('metadataUrl (RFC 8414 §3)', () => {
  test('inserts the well-known suffix between host and path', () => {
    assert.equal(
      metadataUrl('https://as.example'),
      'https://as.example/.well-known/oauth-authorization-server',
    );
    assert.equal(
      metadataUrl('https://as.example/'),
      'https://as.example/.well-known/oauth-authorization-server',
    );
    assert.equal(
      metadataUrl('https://as.example/tenant/1'),
      'https://as.example/.well-known/oauth-authorization-server/tenant/1',
    );
    assert.equal(
      metadataUrl('http://127.0.0.1:8080'),
      'http://127.0.0.1:8080/.well-known/oauth-authorization-server',
    );
  });
});

describe('discoverJwksUri', () => {
  const options = (fetch: typeof globalThis.fetch) => ({
    issuer: 'https://as.example',
    serverUrl: 'https://as.example',
    fetch,
    timeoutMs: 1000,
    allowInsecureHttp: false,
  });
  const url = 'https://as.example/.well-known/oauth-authorization-server';

  test('returns jwks_uri when the metadata names our issuer', async () => {
    const { fetch } = serve({
      [url]: { issuer: 'https://as.example', jwks_uri: 'https://as.example/jwks.json' },
    });
    assert.equal(await discoverJwksUri(options(fetch)), 'https://as.example/jwks.json');
  });

  test('refuses metadata of another issuer (RFC 8414 §3.3), without jwks_uri, or with an http jwks_uri', async () => {
    for (const metadata of [
      { issuer: 'https://evil.example', jwks_uri: 'https://as.example/jwks.json' },
      { issuer: 'https://as.example' },
      { issuer: 'https://as.example', jwks_uri: 'http://as.example/jwks.json' },
    ]) {
      const { fetch } = serve({ [url]: metadata });
      await assert.rejects(discoverJwksUri(options(fetch)), { code: 'REVOKD_GUARD_PROTOCOL' });
    }
  });
});

describe('RemoteKeySet', () => {
  test('refreshes on request at most once per interval, and reports changes', async () => {
    const a = await makeKey('ES256', 'a');
    const b = await makeKey('ES256', 'b');
    const routes: Record<string, unknown> = { 'https://as.example/jwks.json': { keys: [a.jwk] } };
    const { fetch, requests } = serve(routes);
    let nowMs = 0;
    const changes: string[][] = [];
    const set = new RemoteKeySet({
      jwksUri: 'https://as.example/jwks.json',
      algorithms: ['ES256'],
      fetch,
      now: () => nowMs,
      minRefreshIntervalMs: 30_000,
      onChange: (keys) => changes.push(keys.kids),
    });
    await set.refresh();
    assert.ok(set.lookup('a')?.get('ES256'));
    for (let i = 0; i < 100; i++) set.requestRefresh();
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(requests.length, 1);
    routes['https://as.example/jwks.json'] = { keys: [b.jwk] };
    nowMs += 30_000;
    set.requestRefresh();
    set.requestRefresh();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(requests.length, 2);
    assert.equal(set.lookup('a'), undefined, 'a withdrawn key is dropped');
    assert.ok(set.lookup('b'));
    assert.deepEqual(changes, [['a'], ['b']]);
  });

  test('a failed refresh keeps the current keys', async () => {
    const a = await makeKey('ES256', 'a');
    const routes: Record<string, unknown> = { 'https://as.example/jwks.json': { keys: [a.jwk] } };
    const { fetch } = serve(routes);
    const set = new RemoteKeySet({
      jwksUri: 'https://as.example/jwks.json',
      algorithms: ['ES256'],
      fetch,
      now: () => 0,
    });
    await set.refresh();
    routes['https://as.example/jwks.json'] = 'not a jwks';
    await assert.rejects(set.refresh(), { code: 'REVOKD_GUARD_PROTOCOL' });
    assert.ok(set.lookup('a'));
  });
});
