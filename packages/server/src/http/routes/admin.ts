import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { OAuthError } from '../../core/errors.ts';
import type { GuardStatus } from '../../services/guard-registry.ts';
import { REVOCATION_REASONS } from '../../services/revocation.ts';
import type { AuditEventType, SessionRecord } from '../../store/port.ts';
import { authenticateAdmin } from '../admin-auth.ts';
import type { HttpContext } from '../app.ts';
import { enforcementView, parseWaitMs } from './receipts.ts';

/** Same alphabet as the subjects and ids revokd issues: printable ASCII, no spaces. */
const identifier = z.string().regex(/^[\x21-\x7E]{1,255}$/, 'must be 1-255 printable ASCII characters');
const reasonBody = z.strictObject({ reason: z.enum(REVOCATION_REASONS) });
const claimBody = z.strictObject({
  claim: z.string().regex(/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/),
  value: z
    .string()
    .min(1)
    .max(255)
    .regex(/^\P{Cc}+$/u, 'must not contain control characters'),
  reason: z.enum(REVOCATION_REASONS),
});
const auditQuery = z.strictObject({
  subject: identifier.optional(),
  client_id: identifier.optional(),
  sid: identifier.optional(),
  type: z.string().max(32).optional(),
  after: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const sessionsQuery = z.strictObject({ include_ended: z.enum(['true', 'false']).default('false') });

/** The admin API (docs/api.md): JSON in and out, authenticated with an admin Bearer token. */
export function adminRoutes(app: FastifyInstance, { runtime }: HttpContext): void {
  const { admin } = runtime;
  /** A revocation answer; with `?wait_ms=N`, once the guards connected now enforce it (or N ms have passed). */
  const revoked = async (
    request: FastifyRequest,
    entries: ReadonlyArray<{ cursor: number; rule: unknown }>,
  ) => {
    const answer = { rules: entries, cursor: entries.at(-1)?.cursor };
    const waitMs = waitOf(request);
    if (waitMs === undefined || answer.cursor === undefined) return answer;
    return {
      ...answer,
      enforcement: enforcementView(await runtime.guardDirectory.waitForCursor(answer.cursor, waitMs)),
    };
  };

  app.register(
    async (scope) => {
      scope.addHook('preHandler', async (request) => {
        request.actor = await authenticateAdmin(runtime, request);
        // Validated before anything is written.
        waitOf(request);
      });

      scope.post('/subjects/:subject/revoke', async (request) => {
        const { reason } = parse(reasonBody, request.body);
        return revoked(request, await admin.revokeSubject(param(request, 'subject'), reason, request.actor));
      });
      scope.post('/subjects/:subject/suspend', async (request) => {
        return revoked(request, await admin.suspendSubject(param(request, 'subject'), request.actor));
      });
      scope.post('/subjects/:subject/reinstate', async (request) => {
        return { reinstated: await admin.reinstateSubject(param(request, 'subject'), request.actor) };
      });
      scope.get('/subjects/:subject/sessions', async (request) => {
        const subject = param(request, 'subject');
        const { include_ended } = parse(sessionsQuery, request.query);
        const sessions = await admin.listSessions(subject, include_ended === 'true');
        return { subject, suspended: await admin.isSuspended(subject), sessions: sessions.map(sessionView) };
      });
      scope.post('/sessions/:sid/revoke', async (request) => {
        const { reason } = parse(reasonBody, request.body);
        return revoked(request, await admin.revokeSession(param(request, 'sid'), reason, request.actor));
      });
      scope.post('/clients/:clientId/revoke', async (request) => {
        const { reason } = parse(reasonBody, request.body);
        return revoked(request, await admin.revokeClient(param(request, 'clientId'), reason, request.actor));
      });
      scope.post('/claims/revoke', async (request) => {
        const { claim, value, reason } = parse(claimBody, request.body);
        return revoked(request, await admin.revokeClaim(claim, value, reason, request.actor));
      });
      scope.post('/revoke-all', async (request) => {
        const { reason } = parse(reasonBody, request.body);
        return revoked(request, await admin.revokeAll(reason, request.actor));
      });
      scope.get('/guards', async () => {
        const listed = await runtime.guardDirectory.list();
        return {
          cursor: runtime.revocation.index.cursor,
          // Cluster mode says whose guards these are: `node` while Redis cannot be read.
          ...(runtime.guardDirectory.scope === 'cluster' ? { scope: listed.scope } : {}),
          guards: listed.guards.map(guardView),
        };
      });
      scope.get('/audit', async (request) => {
        const q = parse(auditQuery, request.query);
        const events = await admin.readAudit({
          subject: q.subject,
          clientId: q.client_id,
          sid: q.sid,
          type: q.type as AuditEventType | undefined,
          afterId: q.after,
          limit: q.limit,
        });
        return { events, next: events.at(-1)?.id ?? q.after ?? 0 };
      });
    },
    { prefix: '/admin' },
  );
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated admin, as recorded in the audit log. */
    actor: string;
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = issue.path.length ? issue.path.join('.') : 'body';
    throw new OAuthError('invalid_request', `${where}: ${issue.message}`);
  }
  return result.data;
}

function param(request: FastifyRequest, name: string): string {
  const value = (request.params as Record<string, string>)[name];
  return parse(identifier, value);
}

function waitOf(request: FastifyRequest): number | undefined {
  return parseWaitMs((request.query as Record<string, unknown> | undefined)?.wait_ms);
}

function guardView(g: GuardStatus) {
  return {
    guard_id: g.guardId,
    client_id: g.clientId,
    cursor: g.cursor,
    lag_entries: g.lagEntries,
    lag_ms: g.lagMs ?? null,
    connected_at: new Date(g.connectedAtMs).toISOString(),
    last_report_at: g.lastReportAtMs === undefined ? null : new Date(g.lastReportAtMs).toISOString(),
    streams: g.streams,
    // The cluster view's (embedded answers stay as they were).
    ...(g.lastSeenAtMs === undefined
      ? {}
      : {
          last_seen_at: new Date(g.lastSeenAtMs).toISOString(),
          node: g.node ?? null,
          feed: g.feed ?? null,
        }),
  };
}

function sessionView(s: SessionRecord) {
  return {
    sid: s.sid,
    client_id: s.clientId,
    scope: s.scope,
    created_at: new Date(s.createdAtMs).toISOString(),
    last_used_at: new Date(s.lastUsedAtMs).toISOString(),
    expires_at: new Date(s.absoluteExpiresAtMs).toISOString(),
    ended_at: s.endedAtMs === undefined ? null : new Date(s.endedAtMs).toISOString(),
    end_reason: s.endReason ?? null,
  };
}
