import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_CONFIG_FILE, loadConfig, parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { RevokdError } from '../../src/core/errors.ts';

const SECRET_HASH = `sha256:${'A'.repeat(43)}`;
const CLIENT = {
  id: 'app',
  secretHash: SECRET_HASH,
  grants: ['client_credentials'],
  audiences: ['https://api.example.com'],
};

let dir: string;
let originalCwd: string;

// loadConfig reads ./revokd.config.json when no file is named: run from an empty folder so nothing leaks in.
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'revokd-config-test-'));
  originalCwd = process.cwd();
  process.chdir(dir);
});
after(() => {
  process.chdir(originalCwd);
  rmSync(dir, { recursive: true, force: true });
});

function writeJson(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** Asserts `fn` throws REVOKD_CONFIG_INVALID whose message contains every one of `mentions`. */
function assertConfigInvalid(fn: () => unknown, ...mentions: string[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof RevokdError, `expected a RevokdError, got ${String(error)}`);
    assert.equal(error.code, 'REVOKD_CONFIG_INVALID');
    for (const text of mentions)
      assert.ok(error.message.includes(text), `message names ${text}:\n${error.message}`);
    return true;
  });
}

describe('loadConfig: defaults', () => {
  test('with no file, environment or overrides every key has its documented default', () => {
    assert.deepEqual(loadConfig({ env: {} }), {
      issuer: 'http://localhost:8080',
      http: { host: '127.0.0.1', port: 8080, bodyLimitBytes: 16_384, trustProxy: false },
      store: { kind: 'sqlite', path: './data/revokd.db' },
      feed: {},
      tokens: {
        accessTokenTtlSeconds: 300,
        maxAccessTokenTtlSeconds: 3600,
        refreshIdleTtlSeconds: 14 * 86_400,
        refreshAbsoluteTtlSeconds: 30 * 86_400,
        refreshReuseGraceSeconds: 10,
        clockSkewSeconds: 30,
        allowlist: false,
      },
      signing: { algorithm: 'EdDSA' },
      backchannelLogout: {
        timeoutMs: 5000,
        maxAttempts: 40,
        initialBackoffMs: 1000,
        maxBackoffMs: 3_600_000,
        maxAgeMs: 86_400_000,
        tokenTtlSeconds: 120,
        concurrency: 8,
        pollIntervalMs: 1000,
      },
      rateLimit: {
        enabled: true,
        perClient: { ratePerSecond: 200, burst: 400 },
        perAddress: { ratePerSecond: 500, burst: 1000 },
      },
      log: { level: 'info' },
      clients: [],
    });
  });

  test('the default issuer follows the configured port', () => {
    assert.equal(
      loadConfig({ env: {}, overrides: { http: { port: 9000 } } }).issuer,
      'http://localhost:9000',
    );
  });

  test('a client gets default scopes, canIntrospect and sessionClaims', () => {
    const config = parseConfig({ issuer: 'https://auth.example', clients: [CLIENT] });
    assert.deepEqual(config.clients[0], { ...CLIENT, scopes: [], canIntrospect: false, sessionClaims: [] });
  });
});

describe('loadConfig: environment variables', () => {
  const cases: ReadonlyArray<{
    variable: string;
    value: string;
    read: (config: Config) => unknown;
    expected: unknown;
  }> = [
    {
      variable: 'REVOKD_ISSUER',
      value: 'https://auth.example',
      read: (c) => c.issuer,
      expected: 'https://auth.example',
    },
    { variable: 'REVOKD_HOST', value: '0.0.0.0', read: (c) => c.http.host, expected: '0.0.0.0' },
    { variable: 'REVOKD_PORT', value: '9090', read: (c) => c.http.port, expected: 9090 },
    { variable: 'REVOKD_PORT', value: '9090', read: (c) => c.issuer, expected: 'http://localhost:9090' },
    { variable: 'REVOKD_TRUST_PROXY', value: 'true', read: (c) => c.http.trustProxy, expected: true },
    {
      variable: 'REVOKD_DB_PATH',
      value: '/var/lib/revokd/db',
      read: (c) => c.store,
      expected: { kind: 'sqlite', path: '/var/lib/revokd/db' },
    },
    {
      variable: 'REVOKD_DATABASE_URL',
      value: 'postgres://revokd@db.internal:5432/revokd',
      read: (c) => c.store,
      expected: { kind: 'postgres', url: 'postgres://revokd@db.internal:5432/revokd', poolSize: 10 },
    },
    {
      variable: 'REVOKD_REDIS_URL',
      value: 'redis://cache.internal:6379',
      read: (c) => c.feed.redis?.url,
      expected: 'redis://cache.internal:6379',
    },
    {
      variable: 'REVOKD_REDIS_CLUSTER_NODES',
      value: '10.0.0.1:7000, 10.0.0.2:7000',
      read: (c) => c.feed.redis?.clusterNodes,
      expected: ['10.0.0.1:7000', '10.0.0.2:7000'],
    },
    {
      variable: 'REVOKD_SIGNING_ALGORITHM',
      value: 'ES256',
      read: (c) => c.signing.algorithm,
      expected: 'ES256',
    },
    {
      variable: 'REVOKD_ACCESS_TOKEN_TTL_SECONDS',
      value: '60',
      read: (c) => c.tokens.accessTokenTtlSeconds,
      expected: 60,
    },
    {
      variable: 'REVOKD_REFRESH_REUSE_GRACE_SECONDS',
      value: '0',
      read: (c) => c.tokens.refreshReuseGraceSeconds,
      expected: 0,
    },
    {
      variable: 'REVOKD_RATE_LIMIT_ENABLED',
      value: 'false',
      read: (c) => c.rateLimit.enabled,
      expected: false,
    },
    { variable: 'REVOKD_LOG_LEVEL', value: 'debug', read: (c) => c.log.level, expected: 'debug' },
  ];
  for (const { variable, value, read, expected } of cases) {
    test(`${variable}=${value} sets ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(read(loadConfig({ env: { [variable]: value } })), expected);
    });
  }

  test('an empty environment variable is ignored', () => {
    assert.equal(loadConfig({ env: { REVOKD_PORT: '' } }).http.port, 8080);
  });

  test('variables that are not revokd keys are ignored', () => {
    assert.equal(loadConfig({ env: { PORT: '1234', REVOKD_NOPE: '1' } }).http.port, 8080);
  });

  const invalid: ReadonlyArray<[variable: string, value: string, key: string]> = [
    ['REVOKD_PORT', 'eighty', 'http.port'],
    ['REVOKD_PORT', '70000', 'http.port'],
    ['REVOKD_TRUST_PROXY', 'yes', 'http.trustProxy'],
    ['REVOKD_ACCESS_TOKEN_TTL_SECONDS', '0', 'tokens.accessTokenTtlSeconds'],
    ['REVOKD_ACCESS_TOKEN_TTL_SECONDS', '7200', 'tokens.accessTokenTtlSeconds'],
    ['REVOKD_REFRESH_REUSE_GRACE_SECONDS', '-1', 'tokens.refreshReuseGraceSeconds'],
    ['REVOKD_SIGNING_ALGORITHM', 'HS256', 'signing.algorithm'],
    ['REVOKD_LOG_LEVEL', 'loud', 'log.level'],
    ['REVOKD_ISSUER', 'https://auth.example/?tenant=1', 'issuer'],
  ];
  for (const [variable, value, key] of invalid) {
    test(`${variable}=${value} is refused, naming ${key} and the variable`, () => {
      assertConfigInvalid(() => loadConfig({ env: { [variable]: value } }), `${key} (set by ${variable}):`);
    });
  }
});

describe('loadConfig: precedence defaults ← file ← environment ← overrides', () => {
  test('a file value beats the default', () => {
    const file = writeJson('file-only.json', { http: { port: 1000 } });
    assert.equal(loadConfig({ file, env: {} }).http.port, 1000);
  });

  test('an environment value beats the file', () => {
    const file = writeJson('file-env.json', { http: { port: 1000 } });
    assert.equal(loadConfig({ file, env: { REVOKD_PORT: '2000' } }).http.port, 2000);
  });

  test('an override beats the environment and the file', () => {
    const file = writeJson('file-env-override.json', { http: { port: 1000 } });
    const config = loadConfig({ file, env: { REVOKD_PORT: '2000' }, overrides: { http: { port: 3000 } } });
    assert.equal(config.http.port, 3000);
  });

  test('overrides merge deeply: overriding one key keeps its siblings from the file', () => {
    const file = writeJson('deep.json', {
      http: { port: 1000, host: '10.0.0.1' },
      tokens: { clockSkewSeconds: 5 },
    });
    const config = loadConfig({ file, env: {}, overrides: { http: { host: '10.0.0.2' } } });
    assert.deepEqual(
      [config.http.host, config.http.port, config.tokens.clockSkewSeconds],
      ['10.0.0.2', 1000, 5],
    );
  });

  test('an override of undefined leaves the value in place', () => {
    const file = writeJson('undefined-override.json', { log: { level: 'warn' } });
    assert.equal(loadConfig({ file, env: {}, overrides: { log: { level: undefined } } }).log.level, 'warn');
  });

  test('an explicit issuer is kept whatever the port', () => {
    const config = loadConfig({ env: { REVOKD_ISSUER: 'https://auth.example', REVOKD_PORT: '9090' } });
    assert.equal(config.issuer, 'https://auth.example');
  });
});

describe('loadConfig: config files', () => {
  test('reads the file named by the file option', () => {
    const file = writeJson('named.json', {
      issuer: 'https://auth.example',
      tokens: { accessTokenTtlSeconds: 120 },
      clients: [CLIENT],
    });
    const config = loadConfig({ file, env: {} });
    assert.equal(config.issuer, 'https://auth.example');
    assert.equal(config.tokens.accessTokenTtlSeconds, 120);
    assert.equal(config.clients[0]?.id, 'app');
  });

  test('reads the file named by REVOKD_CONFIG when no file option is given', () => {
    const file = writeJson('from-env.json', { log: { level: 'error' } });
    assert.equal(loadConfig({ env: { REVOKD_CONFIG: file } }).log.level, 'error');
  });

  test('the file option beats REVOKD_CONFIG', () => {
    const file = writeJson('option.json', { log: { level: 'warn' } });
    const other = writeJson('env-named.json', { log: { level: 'error' } });
    assert.equal(loadConfig({ file, env: { REVOKD_CONFIG: other } }).log.level, 'warn');
  });

  test(`reads ./${DEFAULT_CONFIG_FILE} when it exists and no file is named`, (t) => {
    const path = writeJson(DEFAULT_CONFIG_FILE, { log: { level: 'trace' } });
    t.after(() => rmSync(path));
    assert.equal(loadConfig({ env: {} }).log.level, 'trace');
  });

  test('a missing named file is refused, naming the file', () => {
    const missing = join(dir, 'does-not-exist.json');
    assertConfigInvalid(() => loadConfig({ file: missing, env: {} }), missing);
  });

  test('a file that is not JSON is refused, naming the file', () => {
    const file = writeJson('broken.json', '{ "http": { "port": 1000, } }');
    assertConfigInvalid(() => loadConfig({ file, env: {} }), file);
  });

  for (const [name, content] of [
    ['an array', '[]'],
    ['null', 'null'],
    ['a string', '"revokd"'],
  ] as const) {
    test(`a file holding ${name} is refused`, () => {
      const file = writeJson(`not-object-${name.replaceAll(' ', '-')}.json`, content);
      assertConfigInvalid(() => loadConfig({ file, env: {} }), 'must hold a JSON object');
    });
  }

  test('an invalid value in the file is refused, naming its key', () => {
    const file = writeJson('bad-value.json', { http: { bodyLimitBytes: 10 } });
    assertConfigInvalid(() => loadConfig({ file, env: {} }), 'http.bodyLimitBytes:');
  });
});

describe('parseConfig: validation', () => {
  const valid = { issuer: 'https://auth.example' };
  const cases: ReadonlyArray<{ name: string; raw: unknown; mentions: string[] }> = [
    {
      name: 'an access-token TTL above the maximum names tokens.accessTokenTtlSeconds',
      raw: { ...valid, tokens: { accessTokenTtlSeconds: 7200, maxAccessTokenTtlSeconds: 3600 } },
      mentions: ['tokens.accessTokenTtlSeconds:', 'must not exceed tokens.maxAccessTokenTtlSeconds'],
    },
    {
      name: 'an idle TTL above the absolute TTL names tokens.refreshIdleTtlSeconds',
      raw: { ...valid, tokens: { refreshIdleTtlSeconds: 100, refreshAbsoluteTtlSeconds: 50 } },
      mentions: ['tokens.refreshIdleTtlSeconds:'],
    },
    {
      name: 'a client TTL above the maximum names clients.0.accessTokenTtlSeconds',
      raw: { ...valid, clients: [{ ...CLIENT, accessTokenTtlSeconds: 7200 }] },
      mentions: ['clients.0.accessTokenTtlSeconds:'],
    },
    {
      name: 'a duplicate client id names the second one',
      raw: { ...valid, clients: [CLIENT, CLIENT] },
      mentions: ['clients.1.id:', 'duplicate id'],
    },
    {
      name: 'a malformed secret hash names clients.0.secretHash',
      raw: { ...valid, clients: [{ ...CLIENT, secretHash: 'plaintext' }] },
      mentions: ['clients.0.secretHash:'],
    },
    {
      name: 'a client without grants names clients.0.grants',
      raw: { ...valid, clients: [{ ...CLIENT, grants: [] }] },
      mentions: ['clients.0.grants:'],
    },
    {
      name: 'an unknown top-level key is refused and named',
      raw: { ...valid, prot: 8080 },
      mentions: ['Unrecognized key', '"prot"'],
    },
    {
      name: 'an unknown nested key is refused, naming its parent and itself',
      raw: { ...valid, http: { prot: 8080 } },
      mentions: ['http:', '"prot"'],
    },
    {
      name: 'an unknown key in a client is refused',
      raw: { ...valid, clients: [{ ...CLIENT, secret: 'plaintext' }] },
      mentions: ['clients.0:', '"secret"'],
    },
    {
      name: 'an unknown store kind names store.kind',
      raw: { ...valid, store: { kind: 'mysql' } },
      mentions: ['store.kind:'],
    },
    {
      name: 'a postgres store without a URL names store.url',
      raw: { ...valid, store: { kind: 'postgres' } },
      mentions: ['store.url:'],
    },
    {
      name: 'a postgres store with a URL of another scheme names store.url',
      raw: { ...valid, store: { kind: 'postgres', url: 'mysql://db/revokd' } },
      mentions: ['store.url:', 'postgres://'],
    },
    {
      name: 'a redis feed with both a URL and cluster nodes is refused',
      raw: { ...valid, feed: { redis: { url: 'redis://a:6379', clusterNodes: ['b:7000'] } } },
      mentions: ['feed.redis:', 'exactly one'],
    },
    {
      name: 'a redis feed with neither a URL nor cluster nodes is refused',
      raw: { ...valid, feed: { redis: {} } },
      mentions: ['feed.redis:', 'exactly one'],
    },
    {
      name: 'a cluster node that is not host:port names it',
      raw: { ...valid, feed: { redis: { clusterNodes: ['redis://a'] } } },
      mentions: ['feed.redis.clusterNodes.0:'],
    },
    {
      name: 'an issuer with a fragment names issuer',
      raw: { issuer: 'https://auth.example/#x' },
      mentions: ['issuer:', 'query or fragment'],
    },
    {
      name: 'an issuer that is not http(s) names issuer',
      raw: { issuer: 'ftp://auth.example' },
      mentions: ['issuer:'],
    },
    {
      name: 'a missing issuer names issuer',
      raw: {},
      mentions: ['issuer:'],
    },
    {
      name: 'every offending key is named at once',
      raw: { ...valid, http: { port: -1 }, log: { level: 'loud' } },
      mentions: ['http.port:', 'log.level:'],
    },
    {
      name: 'a non-object is refused at the root',
      raw: 'issuer=https://auth.example',
      mentions: ['(root):'],
    },
  ];
  for (const { name, raw, mentions } of cases) {
    test(name, () => {
      assertConfigInvalid(() => parseConfig(raw), ...mentions);
    });
  }

  test('backchannelLogout.initialBackoffMs above maxBackoffMs is refused, naming the key', () => {
    assert.throws(
      () => parseConfig({ ...valid, backchannelLogout: { initialBackoffMs: 5000, maxBackoffMs: 1000 } }),
      /backchannelLogout\.initialBackoffMs: must not exceed backchannelLogout\.maxBackoffMs/,
    );
  });

  test('a grace period of 0 (disabled) is valid', () => {
    assert.equal(
      parseConfig({ ...valid, tokens: { refreshReuseGraceSeconds: 0 } }).tokens.refreshReuseGraceSeconds,
      0,
    );
  });
});

describe('parseConfig: the result is deep-frozen', () => {
  const config = parseConfig({ issuer: 'https://auth.example', clients: [CLIENT] });
  const nodes: ReadonlyArray<[path: string, value: unknown]> = [
    ['(root)', config],
    ['http', config.http],
    ['store', config.store],
    ['tokens', config.tokens],
    ['rateLimit', config.rateLimit],
    ['rateLimit.perClient', config.rateLimit.perClient],
    ['rateLimit.perAddress', config.rateLimit.perAddress],
    ['clients', config.clients],
    ['clients.0', config.clients[0]],
    ['clients.0.grants', config.clients[0]?.grants],
    ['clients.0.audiences', config.clients[0]?.audiences],
    ['clients.0.scopes', config.clients[0]?.scopes],
  ];
  for (const [path, value] of nodes) {
    test(`${path} is frozen`, () => {
      assert.equal(Object.isFrozen(value), true);
    });
  }

  test('assigning to a nested key throws', () => {
    assert.throws(() => {
      (config.tokens as { accessTokenTtlSeconds: number }).accessTokenTtlSeconds = 1;
    }, TypeError);
    assert.equal(config.tokens.accessTokenTtlSeconds, 300);
  });
});
