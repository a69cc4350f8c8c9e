import { z } from 'zod';

/** Grant types revokd implements at the token endpoint. */
export const GRANT_TYPES = {
  clientCredentials: 'client_credentials',
  refreshToken: 'refresh_token',
  tokenExchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
} as const;
export type GrantType = (typeof GRANT_TYPES)[keyof typeof GRANT_TYPES];
const grantType = z.enum([
  GRANT_TYPES.clientCredentials,
  GRANT_TYPES.refreshToken,
  GRANT_TYPES.tokenExchange,
]);

export const SIGNING_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'PS256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** Scope that lets an access token call the admin API (audience {@link ADMIN_AUDIENCE}). */
export const ADMIN_SCOPE = 'revokd:admin';
export const ADMIN_AUDIENCE = 'urn:revokd:admin';

const seconds = (max: number) => z.number().int().positive().max(max);
const DAY = 86_400;
const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'must be a scope-token (RFC 6749 §3.3)');
const identifier = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7E]+$/, 'must be printable ASCII without spaces');

export const clientSchema = z.strictObject({
  /** The `client_id`. */
  id: identifier,
  /** `sha256:` + base64url of SHA-256 of the secret, as printed by `revokd client add`. */
  secretHash: z
    .string()
    .regex(/^sha256:[A-Za-z0-9_-]{43}$/, 'must be "sha256:" followed by 43 base64url characters'),
  grants: z.array(grantType).min(1),
  /** Audiences (`aud`) this client may obtain tokens for; the first is the default. */
  audiences: z.array(z.string().min(1).max(512)).min(1),
  /** Scopes this client may request; requesting none grants all of them. */
  scopes: z.array(scopeToken).default([]),
  /** Overrides `tokens.accessTokenTtlSeconds`; must not exceed `tokens.maxAccessTokenTtlSeconds`. */
  accessTokenTtlSeconds: seconds(DAY).optional(),
  /** OpenID Connect Back-Channel Logout URI. */
  backchannelLogoutUri: z.url({ protocol: /^https?$/ }).optional(),
  /** May introspect tokens issued to other clients (a resource server). */
  canIntrospect: z.boolean().default(false),
  /** Claim names a trusted backend may set on user sessions it opens through token exchange. */
  sessionClaims: z.array(z.string().regex(/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/)).default([]),
});
export type ClientConfig = z.infer<typeof clientSchema>;

const rateSchema = z.strictObject({
  /** Sustained requests per second. */
  ratePerSecond: z.number().positive().max(1_000_000),
  /** Requests allowed in a burst above the sustained rate. */
  burst: z.number().int().positive().max(1_000_000),
});

export const configSchema = z
  .strictObject({
    /** The issuer identifier (`iss`), an https URL in production (RFC 8414 §2). */
    issuer: z.url({ protocol: /^https?$/ }).refine((u) => !u.includes('?') && !u.includes('#'), {
      message: 'must not contain a query or fragment (RFC 8414 §2)',
    }),
    http: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65_535).default(8080),
        /** Largest accepted request body. */
        bodyLimitBytes: z.number().int().min(1024).max(1_048_576).default(16_384),
        /** Trust `X-Forwarded-For` (behind a reverse proxy) for per-address rate limits. */
        trustProxy: z.boolean().default(false),
      })
      .prefault({}),
    store: z
      .discriminatedUnion('kind', [
        /** Embedded: one SQLite file, one server process (the CLI may run beside it). */
        z.strictObject({ kind: z.literal('sqlite'), path: z.string().min(1).default('./data/revokd.db') }),
        /** Cluster mode: several server nodes share one PostgreSQL database (`revokd migrate` creates its schema). */
        z.strictObject({
          kind: z.literal('postgres'),
          /** `postgres://user:password@host:port/database`; secrets in it are never logged. */
          url: z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// connection URL'),
          /** Connections per server process. */
          poolSize: z.number().int().min(1).max(200).default(10),
        }),
      ])
      .prefault({ kind: 'sqlite' }),
    /**
     * Fan-out of the revocation log beyond this process's own stream. With `redis`, every node publishes the log, in
     * cursor order and once per entry, to one Redis stream that guards may follow instead of a node's HTTP stream.
     */
    feed: z
      .strictObject({
        redis: z
          .strictObject({
            /** A single Redis server: `redis://[user:password@]host:port[/db]` (or `rediss://`). */
            url: z
              .string()
              .regex(/^rediss?:\/\/\S+$/, 'must be a redis:// URL')
              .optional(),
            /** A Redis Cluster: seed nodes as `host:port`; used instead of `url`. */
            clusterNodes: z
              .array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port'))
              .min(1)
              .optional(),
            /** The stream's key; the `{…}` hash tag keeps every key of the feed in one Redis Cluster slot. */
            streamKey: z.string().min(1).max(200).default('{revokd}:log'),
            /** Entries kept in the stream (approximately); a guard further behind reloads a snapshot. */
            maxLength: z.number().int().min(1000).max(100_000_000).default(100_000),
            /** Heartbeat period on the stream, in ms: Redis-following guards measure their freshness by it. */
            heartbeatMs: z.number().int().min(50).max(60_000).default(1000),
          })
          .refine((redis) => (redis.url === undefined) !== (redis.clusterNodes === undefined), {
            message: 'set exactly one of url and clusterNodes',
          })
          .optional(),
      })
      .prefault({}),
    tokens: z
      .strictObject({
        accessTokenTtlSeconds: seconds(DAY).default(300),
        /** Upper bound on any access token's lifetime; not-before rules expire after it. */
        maxAccessTokenTtlSeconds: seconds(DAY).default(3600),
        /** A session whose refresh token is unused this long ends. */
        refreshIdleTtlSeconds: seconds(365 * DAY).default(14 * DAY),
        /** A session ends this long after it began, however active. */
        refreshAbsoluteTtlSeconds: seconds(365 * DAY).default(30 * DAY),
        /**
         * Within this many seconds of a rotation, presenting the rotated token again returns the same successor
         * (a client's own concurrent refresh); after it, or for older tokens, it is reuse. 0 disables the grace.
         */
        refreshReuseGraceSeconds: z.number().int().min(0).max(300).default(10),
        /** Margin for clock differences between revokd and guards, added to every rule's expiry. */
        clockSkewSeconds: z.number().int().min(0).max(300).default(30),
        /**
         * Not-before rules reject tokens issued up to this many ms after the rule was written: the largest clock
         * offset between server nodes, so a token another node issued just before the rule, on a clock running
         * ahead, is still covered. Default 0 with the embedded store (one clock), 100 in cluster mode.
         */
        notBeforeMarginMs: z.number().int().min(0).max(10_000).optional(),
        /**
         * Allowlist mode: every access token issued is recorded in the revocation log (an `allow` entry) before
         * it is returned, and introspection (and guards in `mode: 'allowlist'`) accept only recorded tokens.
         */
        allowlist: z.boolean().default(false),
      })
      .prefault({}),
    signing: z
      .strictObject({
        algorithm: z.enum(SIGNING_ALGORITHMS).default('EdDSA'),
      })
      .prefault({}),
    /**
     * OpenID Connect Back-Channel Logout: delivery of logout tokens to clients with a `backchannelLogoutUri`
     * when their sessions end. Each failed attempt is retried after `initialBackoffMs`, doubling up to
     * `maxBackoffMs` (with jitter), until `maxAttempts` or `maxAgeMs` is reached; then it is recorded as failed.
     */
    backchannelLogout: z
      .strictObject({
        /** Timeout of one delivery (the POST to the client), in ms. */
        timeoutMs: z.number().int().min(100).max(60_000).default(5000),
        /** Attempts before a delivery is given up. */
        maxAttempts: z.number().int().min(1).max(1000).default(40),
        /** Delay before the first retry, in ms; it doubles with each failed attempt. */
        initialBackoffMs: z.number().int().min(10).max(3_600_000).default(1000),
        /** Longest delay between two attempts, in ms. */
        maxBackoffMs: z.number().int().min(10).max(86_400_000).default(3_600_000),
        /** A delivery still failing this long after its session ended is given up, in ms. */
        maxAgeMs: z.number().int().min(1000).max(604_800_000).default(86_400_000),
        /** Lifetime (`exp - iat`) of a logout token, in seconds; each attempt signs a fresh one. */
        tokenTtlSeconds: z.number().int().min(10).max(600).default(120),
        /** Deliveries in flight at once, per server process. */
        concurrency: z.number().int().min(1).max(100).default(8),
        /** How often the outbox is read for deliveries queued elsewhere (the CLI, other nodes), in ms. */
        pollIntervalMs: z.number().int().min(10).max(60_000).default(1000),
      })
      .prefault({}),
    rateLimit: z
      .strictObject({
        enabled: z.boolean().default(true),
        perClient: rateSchema.default({ ratePerSecond: 200, burst: 400 }),
        perAddress: rateSchema.default({ ratePerSecond: 500, burst: 1000 }),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .prefault({}),
    /** Clients declared here are created or updated in the store at start (clients added by the CLI live there too). */
    clients: z.array(clientSchema).default([]),
  })
  .superRefine((config, ctx) => {
    const { tokens } = config;
    if (tokens.accessTokenTtlSeconds > tokens.maxAccessTokenTtlSeconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['tokens', 'accessTokenTtlSeconds'],
        message: 'must not exceed tokens.maxAccessTokenTtlSeconds',
      });
    }
    if (tokens.refreshIdleTtlSeconds > tokens.refreshAbsoluteTtlSeconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['tokens', 'refreshIdleTtlSeconds'],
        message: 'must not exceed tokens.refreshAbsoluteTtlSeconds',
      });
    }
    if (config.backchannelLogout.initialBackoffMs > config.backchannelLogout.maxBackoffMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['backchannelLogout', 'initialBackoffMs'],
        message: 'must not exceed backchannelLogout.maxBackoffMs',
      });
    }
    const seen = new Set<string>();
    config.clients.forEach((client, i) => {
      if (seen.has(client.id))
        ctx.addIssue({ code: 'custom', path: ['clients', i, 'id'], message: 'duplicate id' });
      seen.add(client.id);
      if ((client.accessTokenTtlSeconds ?? 0) > tokens.maxAccessTokenTtlSeconds) {
        ctx.addIssue({
          code: 'custom',
          path: ['clients', i, 'accessTokenTtlSeconds'],
          message: 'must not exceed tokens.maxAccessTokenTtlSeconds',
        });
      }
    });
  });

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
