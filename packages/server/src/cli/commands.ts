import type { ParseArgsOptionsConfig } from 'node:util';
import { type Config, clientSchema, GRANT_TYPES, type GrantType } from '../config/schema.ts';
import { RevokdError } from '../core/errors.ts';
import { buildApp } from '../http/app.ts';
import { createRuntime, type Runtime } from '../runtime.ts';
import { REVOCATION_REASONS, type RevocationReason } from '../services/revocation.ts';
import { migratePostgres } from '../store/postgres/migrations.ts';

export interface CommandContext {
  readonly config: Config;
  readonly values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  readonly positionals: string[];
  readonly out: (line: string) => void;
}

interface Command {
  readonly summary: string;
  readonly options?: ParseArgsOptionsConfig;
  readonly overrides?: (values: CommandContext['values']) => Record<string, unknown>;
  run(ctx: CommandContext): Promise<number>;
}

const ACTOR = 'cli';

/** Runs `fn` against a runtime that does not follow the log (one command, then exit). */
async function withRuntime<T>(config: Config, fn: (runtime: Runtime) => Promise<T>): Promise<T> {
  const runtime = await createRuntime(config, { follow: false, actor: ACTOR });
  try {
    return await fn(runtime);
  } finally {
    await runtime.close();
  }
}

function positional(ctx: CommandContext, index: number, what: string): string {
  const value = ctx.positionals[index];
  if (value === undefined) throw new RevokdError('REVOKD_INVALID_ARGUMENT', `missing ${what}`);
  return value;
}

function reasonOf(ctx: CommandContext, fallback: RevocationReason): RevocationReason {
  const reason = (ctx.values.reason as string | undefined) ?? fallback;
  if (!(REVOCATION_REASONS as readonly string[]).includes(reason)) {
    throw new RevokdError(
      'REVOKD_INVALID_ARGUMENT',
      `--reason must be one of: ${REVOCATION_REASONS.join(', ')}`,
    );
  }
  return reason as RevocationReason;
}

/** A non-negative integer option, or `fallback` when absent; anything else is a usage error, not a stack trace. */
function count(ctx: CommandContext, name: string, fallback: number): number {
  const raw = ctx.values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(value)) {
    throw new RevokdError('REVOKD_INVALID_ARGUMENT', `--${name} must be a non-negative integer`);
  }
  return value;
}

function list(value: unknown): string[] {
  return (Array.isArray(value) ? value : value === undefined ? [] : [value]).flatMap((v) =>
    String(v).split(','),
  );
}

const GRANT_ALIASES: Readonly<Record<string, GrantType>> = {
  client_credentials: GRANT_TYPES.clientCredentials,
  refresh_token: GRANT_TYPES.refreshToken,
  token_exchange: GRANT_TYPES.tokenExchange,
  [GRANT_TYPES.tokenExchange]: GRANT_TYPES.tokenExchange,
};

const serve: Command = {
  summary: 'run the token service (HTTP) on the configured store',
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    db: { type: 'string' },
    issuer: { type: 'string' },
  },
  overrides: (v) => ({
    ...(v.port !== undefined ? { http: { port: Number(v.port) } } : {}),
    ...(v.host !== undefined ? { http: { host: v.host } } : {}),
    ...(v.db !== undefined ? { store: { kind: 'sqlite', path: v.db } } : {}),
    ...(v.issuer !== undefined ? { issuer: v.issuer } : {}),
  }),
  async run({ config }) {
    const runtime = await createRuntime(config, { follow: true });
    const app = buildApp(runtime);
    let closing = false;
    const shutdown = async (signal: string) => {
      if (closing) return;
      closing = true;
      app.log.info({ signal }, 'shutting down');
      // close() only drops the keep-alive connections idle at that moment; those that finish a request later would
      // hold the exit for the 72 s keep-alive timeout. Drop them as they go idle, and everything after 10 s.
      const reaper = setInterval(() => app.server.closeIdleConnections(), 100);
      const deadline = setTimeout(() => app.server.closeAllConnections(), 10_000);
      try {
        await app.close();
      } finally {
        clearInterval(reaper);
        clearTimeout(deadline);
      }
      await runtime.close();
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
    await app.listen({ host: config.http.host, port: config.http.port });
    app.log.info({ issuer: config.issuer, store: config.store.kind }, 'revokd is serving');
    await new Promise<void>((resolve) => app.server.once('close', () => resolve()));
    return 0;
  },
};

const migrate: Command = {
  summary: 'create or upgrade the store schema, then exit',
  async run({ config, out }) {
    if (config.store.kind === 'postgres') {
      // Cluster mode: `serve` never changes the schema; this is the one step that does (safe to run from two nodes).
      const { from, to } = await migratePostgres(config.store.url);
      out(
        from === to
          ? `store postgres is at the current schema (version ${to})`
          : `store postgres schema migrated from version ${from} to ${to}`,
      );
    }
    await withRuntime(config, async () => undefined);
    if (config.store.kind === 'sqlite') out(`store ${config.store.kind} is at the current schema`);
    return 0;
  },
};

const client: Command = {
  summary: 'client add <id> | list | remove <id>   (add prints the new secret once)',
  options: {
    grant: { type: 'string', multiple: true },
    audience: { type: 'string', multiple: true },
    scope: { type: 'string', multiple: true },
    'session-claim': { type: 'string', multiple: true },
    'access-token-ttl': { type: 'string' },
    'backchannel-logout-uri': { type: 'string' },
    introspect: { type: 'boolean' },
  },
  async run(ctx) {
    const action = positional(ctx, 0, 'action (add, list, remove)');
    return withRuntime(ctx.config, async (runtime) => {
      switch (action) {
        case 'add': {
          const id = positional(ctx, 1, 'client id');
          const grants = list(ctx.values.grant).map((g) => {
            const grant = GRANT_ALIASES[g];
            if (!grant) throw new RevokdError('REVOKD_INVALID_ARGUMENT', `unknown grant ${g}`);
            return grant;
          });
          const audiences = list(ctx.values.audience);
          if (grants.length === 0)
            throw new RevokdError('REVOKD_INVALID_ARGUMENT', 'give at least one --grant');
          if (audiences.length === 0)
            throw new RevokdError('REVOKD_INVALID_ARGUMENT', 'give at least one --audience');
          const ttl = ctx.values['access-token-ttl'];
          // The same rules as clients declared in the configuration (ids, scopes, URIs, TTL bounds).
          const parsed = clientSchema.omit({ secretHash: true }).safeParse({
            id,
            grants,
            audiences,
            scopes: list(ctx.values.scope),
            sessionClaims: list(ctx.values['session-claim']),
            accessTokenTtlSeconds: ttl === undefined ? undefined : Number(ttl),
            backchannelLogoutUri: ctx.values['backchannel-logout-uri'] as string | undefined,
            canIntrospect: ctx.values.introspect === true,
          });
          if (!parsed.success) {
            const issue = parsed.error.issues[0]!;
            throw new RevokdError(
              'REVOKD_INVALID_ARGUMENT',
              `${issue.path.join('.') || 'client'}: ${issue.message}`,
            );
          }
          const max = ctx.config.tokens.maxAccessTokenTtlSeconds;
          if ((parsed.data.accessTokenTtlSeconds ?? 0) > max) {
            throw new RevokdError(
              'REVOKD_INVALID_ARGUMENT',
              `--access-token-ttl must not exceed tokens.maxAccessTokenTtlSeconds (${max})`,
            );
          }
          const { accessTokenTtlSeconds, backchannelLogoutUri } = parsed.data;
          const { secret } = await runtime.clients.register({
            ...parsed.data,
            accessTokenTtlSeconds,
            backchannelLogoutUri,
          });
          ctx.out(JSON.stringify({ client_id: id, client_secret: secret }));
          return 0;
        }
        case 'list':
          for (const c of await runtime.store.listClients()) {
            const { secretHash: _hidden, ...visible } = c;
            ctx.out(JSON.stringify(visible));
          }
          return 0;
        case 'remove': {
          const id = positional(ctx, 1, 'client id');
          if (!(await runtime.store.deleteClient(id)))
            throw new RevokdError('REVOKD_NOT_FOUND', `no client ${id}`);
          return 0;
        }
        default:
          throw new RevokdError('REVOKD_INVALID_ARGUMENT', `unknown client action ${action}`);
      }
    });
  },
};

const key: Command = {
  summary: 'key list | rotate | compromise <kid>   (compromise also revokes every token issued so far)',
  async run(ctx) {
    const action = positional(ctx, 0, 'action (list, rotate, compromise)');
    return withRuntime(ctx.config, async (runtime) => {
      switch (action) {
        case 'list':
          for (const k of runtime.keyring.list()) {
            ctx.out(
              JSON.stringify({ kid: k.kid, alg: k.alg, state: k.state, publishUntilMs: k.publishUntilMs }),
            );
          }
          return 0;
        case 'rotate':
          ctx.out(JSON.stringify({ kid: (await runtime.keyring.rotate(ACTOR)).kid }));
          return 0;
        case 'compromise': {
          const entries = await runtime.admin.compromiseKey(positional(ctx, 1, 'kid'), ACTOR);
          ctx.out(JSON.stringify({ revoked: entries, activeKid: runtime.keyring.activeKid }));
          return 0;
        }
        default:
          throw new RevokdError('REVOKD_INVALID_ARGUMENT', `unknown key action ${action}`);
      }
    });
  },
};

const revoke: Command = {
  summary: 'revoke subject <sub> | session <sid> | client <id> | claim <name> <value> | all   [--reason R]',
  options: { reason: { type: 'string' } },
  async run(ctx) {
    const what = positional(ctx, 0, 'what to revoke');
    return withRuntime(ctx.config, async ({ admin }) => {
      const reason = reasonOf(ctx, 'administrative');
      const entries = await (() => {
        switch (what) {
          case 'subject':
            return admin.revokeSubject(positional(ctx, 1, 'subject'), reason, ACTOR);
          case 'session':
            return admin.revokeSession(positional(ctx, 1, 'session id'), reason, ACTOR);
          case 'client':
            return admin.revokeClient(positional(ctx, 1, 'client id'), reason, ACTOR);
          case 'claim':
            return admin.revokeClaim(positional(ctx, 1, 'claim'), positional(ctx, 2, 'value'), reason, ACTOR);
          case 'all':
            return admin.revokeAll(reason, ACTOR);
          default:
            throw new RevokdError('REVOKD_INVALID_ARGUMENT', `cannot revoke "${what}"`);
        }
      })();
      for (const entry of entries) ctx.out(JSON.stringify(entry));
      return 0;
    });
  },
};

const subject: Command = {
  summary: 'subject suspend <sub> | reinstate <sub> | sessions <sub>',
  async run(ctx) {
    const action = positional(ctx, 0, 'action (suspend, reinstate, sessions)');
    const sub = positional(ctx, 1, 'subject');
    return withRuntime(ctx.config, async ({ admin }) => {
      switch (action) {
        case 'suspend':
          for (const entry of await admin.suspendSubject(sub, ACTOR)) ctx.out(JSON.stringify(entry));
          return 0;
        case 'reinstate':
          if (!(await admin.reinstateSubject(sub, ACTOR))) {
            throw new RevokdError('REVOKD_NOT_FOUND', `subject ${sub} is not suspended`);
          }
          return 0;
        case 'sessions':
          for (const s of await admin.listSessions(sub, true)) ctx.out(JSON.stringify(s));
          return 0;
        default:
          throw new RevokdError('REVOKD_INVALID_ARGUMENT', `unknown subject action ${action}`);
      }
    });
  },
};

const feed: Command = {
  summary: 'feed [--after N] [--limit N]   print revocation log entries as JSON lines',
  options: { after: { type: 'string' }, limit: { type: 'string' } },
  async run(ctx) {
    return withRuntime(ctx.config, async ({ store }) => {
      const entries = await store.readLog(count(ctx, 'after', 0), count(ctx, 'limit', 1000));
      for (const entry of entries) ctx.out(JSON.stringify(entry));
      return 0;
    });
  },
};

const audit: Command = {
  summary: 'audit [--subject S] [--limit N]   print audit events as JSON lines',
  options: { subject: { type: 'string' }, after: { type: 'string' }, limit: { type: 'string' } },
  async run(ctx) {
    return withRuntime(ctx.config, async ({ admin }) => {
      const events = await admin.readAudit({
        subject: ctx.values.subject as string | undefined,
        afterId: count(ctx, 'after', 0),
        limit: count(ctx, 'limit', 100),
      });
      for (const event of events) ctx.out(JSON.stringify(event));
      return 0;
    });
  },
};

export const COMMANDS: Readonly<Record<string, Command>> = {
  serve,
  migrate,
  client,
  key,
  revoke,
  subject,
  feed,
  audit,
};

export const HELP = `usage: revokd <command> [--config FILE] [options]

${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`)
  .join('\n')}

Configuration: revokd.config.json (or --config / REVOKD_CONFIG) and REVOKD_* variables; see docs/configuration.md.
`;
