import { existsSync, readFileSync } from 'node:fs';
import type { z } from 'zod';
import { RevokdError } from '../core/errors.ts';
import { type Config, configSchema } from './schema.ts';

type EnvType = 'string' | 'integer' | 'boolean' | 'list';

/** Environment variables, the configuration key each one sets, and how its text is read. */
export const ENV_KEYS: Readonly<
  Record<string, { readonly path: readonly string[]; readonly type: EnvType }>
> = {
  REVOKD_ISSUER: { path: ['issuer'], type: 'string' },
  REVOKD_HOST: { path: ['http', 'host'], type: 'string' },
  REVOKD_PORT: { path: ['http', 'port'], type: 'integer' },
  REVOKD_TRUST_PROXY: { path: ['http', 'trustProxy'], type: 'boolean' },
  REVOKD_DB_PATH: { path: ['store', 'path'], type: 'string' },
  REVOKD_DATABASE_URL: { path: ['store', 'url'], type: 'string' },
  REVOKD_REDIS_URL: { path: ['feed', 'redis', 'url'], type: 'string' },
  REVOKD_REDIS_CLUSTER_NODES: { path: ['feed', 'redis', 'clusterNodes'], type: 'list' },
  REVOKD_SIGNING_ALGORITHM: { path: ['signing', 'algorithm'], type: 'string' },
  REVOKD_ACCESS_TOKEN_TTL_SECONDS: { path: ['tokens', 'accessTokenTtlSeconds'], type: 'integer' },
  REVOKD_REFRESH_REUSE_GRACE_SECONDS: { path: ['tokens', 'refreshReuseGraceSeconds'], type: 'integer' },
  REVOKD_ALLOWLIST: { path: ['tokens', 'allowlist'], type: 'boolean' },
  REVOKD_RATE_LIMIT_ENABLED: { path: ['rateLimit', 'enabled'], type: 'boolean' },
  REVOKD_LOG_LEVEL: { path: ['log', 'level'], type: 'string' },
};

export const DEFAULT_CONFIG_FILE = 'revokd.config.json';

export interface LoadOptions {
  /** Path of a JSON config file; when absent, `./revokd.config.json` is read if it exists. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Highest-precedence overrides (command-line flags), as a partial config. */
  overrides?: Record<string, unknown>;
}

/**
 * Loads the configuration: defaults ← file ← environment ← overrides, validated once and deep-frozen.
 * Throws a {@link RevokdError} `REVOKD_CONFIG_INVALID` whose message names every offending key.
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const raw: Record<string, unknown> = readConfigFile(options.file ?? env.REVOKD_CONFIG);
  const fromEnv = new Map<string, string>();
  for (const [name, { path, type }] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value !== undefined && value !== '') {
      setPath(raw, path, parseEnvValue(value, type));
      fromEnv.set(path.join('.'), name);
    }
  }
  if (options.overrides) deepMerge(raw, options.overrides);
  // A store given only a path (REVOKD_DB_PATH, or a file's `store.path`) is the embedded SQLite store, the default;
  // one given only a URL (REVOKD_DATABASE_URL) is PostgreSQL.
  if (isPlainObject(raw.store) && raw.store.kind === undefined) {
    raw.store.kind = raw.store.url !== undefined && raw.store.path === undefined ? 'postgres' : 'sqlite';
  }
  raw.issuer ??= defaultIssuer(raw);
  return parseConfig(raw, fromEnv);
}

/**
 * Validates a raw config object (already merged) and freezes it. `fromEnv` maps keys to the environment
 * variables that set them, so an error can name the variable the operator actually wrote.
 */
export function parseConfig(raw: unknown, fromEnv: ReadonlyMap<string, string> = new Map()): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new RevokdError(
      'REVOKD_CONFIG_INVALID',
      `invalid configuration:\n${formatIssues(result.error, fromEnv)}`,
    );
  }
  return deepFreeze(result.data);
}

function readConfigFile(file: string | undefined): Record<string, unknown> {
  const path = file ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  if (path === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new RevokdError(
      'REVOKD_CONFIG_INVALID',
      `cannot read config file ${path}: ${(error as Error).message}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new RevokdError('REVOKD_CONFIG_INVALID', `config file ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function defaultIssuer(raw: Record<string, unknown>): string {
  const http = (raw.http ?? {}) as { host?: unknown; port?: unknown };
  const port = typeof http.port === 'number' ? http.port : 8080;
  return `http://localhost:${port}`;
}

function formatIssues(error: z.ZodError, fromEnv: ReadonlyMap<string, string>): string {
  return error.issues
    .map((issue) => {
      const key = issue.path.join('.');
      const source = fromEnv.get(key);
      return `  - ${key || '(root)'}${source ? ` (set by ${source})` : ''}: ${issue.message}`;
    })
    .join('\n');
}

/** Text that does not read as the expected type is passed on as is, so validation names the key. */
function parseEnvValue(value: string, type: EnvType): unknown {
  if (type === 'integer' && /^-?\d+$/.test(value.trim())) return Number(value);
  if (type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  if (type === 'list') return value.split(',').map((item) => item.trim());
  return value;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = value;
}

function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const current = target[key];
    if (isPlainObject(value) && isPlainObject(current)) deepMerge(current, value);
    else if (value !== undefined) target[key] = value;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
