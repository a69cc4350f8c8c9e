import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { RateLimiter } from '../core/rate-limiter.ts';
import type { Runtime } from '../runtime.ts';
import { type ChallengeScheme, toWireError } from './errors.ts';
import { FormParams } from './form.ts';
import { Metrics } from './metrics.ts';
import { adminRoutes } from './routes/admin.ts';
import { discoveryRoutes } from './routes/discovery.ts';
import { feedRoutes } from './routes/feed.ts';
import { oauthRoutes } from './routes/oauth.ts';
import { opsRoutes } from './routes/ops.ts';
import { receiptRoutes } from './routes/receipts.ts';
import { streamRoutes } from './routes/stream.ts';

export interface AppOptions {
  /** pino logger options, or false for none (tests). */
  readonly logger?: boolean | Record<string, unknown>;
}

/** Per-request collaborators the routes share. */
export interface HttpContext {
  readonly runtime: Runtime;
  readonly metrics: Metrics;
  readonly clientLimiter: RateLimiter | undefined;
  readonly addressLimiter: RateLimiter | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Which `WWW-Authenticate` scheme an error on this route answers with. */
    challengeScheme?: ChallengeScheme;
  }
}

/** Log fields that must never be written, wherever they appear. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  '*.client_secret',
  '*.refresh_token',
  '*.access_token',
  '*.token',
  '*.subject_token',
];

export function buildApp(runtime: Runtime, options: AppOptions = {}): FastifyInstance {
  const { config } = runtime;
  const app = Fastify({
    logger:
      options.logger === false
        ? false
        : {
            level: config.log.level,
            redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
            ...(options.logger as object),
          },
    bodyLimit: config.http.bodyLimitBytes,
    trustProxy: config.http.trustProxy,
    // Parameter names and values are ours to parse; reject absurd URLs before routing.
    routerOptions: { maxParamLength: 512 },
    return503OnClosing: true,
    // Router errors (a malformed percent-encoding, an over-long path parameter) get the same RFC-shaped answer.
    frameworkErrors: (error, request, reply) => {
      sendError(error, request, reply);
    },
  });
  const metrics = new Metrics(runtime);
  const ctx: HttpContext = {
    runtime,
    metrics,
    clientLimiter: config.rateLimit.enabled ? new RateLimiter(config.rateLimit.perClient) : undefined,
    addressLimiter: config.rateLimit.enabled ? new RateLimiter(config.rateLimit.perAddress) : undefined,
  };

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, FormParams.parse(body as string));
  });

  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((_request, reply) => {
    reply
      .code(404)
      .header('cache-control', 'no-store')
      .send({ error: 'not_found', error_description: 'no such endpoint' });
  });
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(
      request.routeOptions.url ?? 'unmatched',
      request.method,
      reply.statusCode,
      reply.elapsedTime,
    );
    done();
  });

  // Audit events written after the answer (issuance, introspection) can be lost when the store fails: say so.
  const stopAuditLog = runtime.audit.onLoss((loss) =>
    app.log.error({ err: loss.error, reason: loss.reason, events: loss.events }, 'audit events lost'),
  );
  app.addHook('onClose', (_app, done) => {
    stopAuditLog();
    done();
  });

  discoveryRoutes(app, ctx);
  oauthRoutes(app, ctx);
  adminRoutes(app, ctx);
  feedRoutes(app, ctx);
  streamRoutes(app, ctx);
  receiptRoutes(app, ctx);
  opsRoutes(app, ctx);
  return app;
}

export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const wire = toWireError(error, request.challengeScheme);
  if (wire.unexpected !== undefined) request.log.error({ err: wire.unexpected }, 'request failed');
  return reply.code(wire.status).headers(wire.headers).send(wire.body);
}

/** Registers `405 Method Not Allowed` for the other methods of an endpoint path. */
export function onlyMethods(app: FastifyInstance, url: string, allowed: readonly string[]): void {
  const others = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'].filter((m) => !allowed.includes(m));
  app.route({
    method: others,
    url,
    handler: (_request, reply) =>
      reply
        .code(405)
        .header('allow', allowed.join(', '))
        .header('cache-control', 'no-store')
        .send({ error: 'method_not_allowed', error_description: `use ${allowed.join(' or ')}` }),
  });
}
