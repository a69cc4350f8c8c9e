import type { FastifyInstance } from 'fastify';
import { GRANT_TYPES } from '../../config/schema.ts';
import { OAuthError } from '../../core/errors.ts';
import type { TokenResponse } from '../../services/tokens.ts';
import { type HttpContext, onlyMethods } from '../app.ts';
import type { FormParams } from '../form.ts';
import { PATHS } from './discovery.ts';
import { authenticateClient, formOf, limitAddress, presentedToken, tokenTypeHint } from './oauth-request.ts';
import { enforcementView, parseWaitMs } from './receipts.ts';

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

/** The token (RFC 6749 §3.2), revocation (RFC 7009) and introspection (RFC 7662) endpoints. */
export function oauthRoutes(app: FastifyInstance, ctx: HttpContext): void {
  const { tokens, revocation, introspection } = ctx.runtime;

  app.post(PATHS.token, async (request, reply) => {
    limitAddress(ctx, request);
    const form = formOf(request);
    form.assertSingleValued(['resource', 'audience']);
    const client = await authenticateClient(ctx, request, form);
    const grantType = form.required('grant_type');
    let response: TokenResponse;
    switch (grantType) {
      case GRANT_TYPES.clientCredentials:
        response = await tokens.clientCredentials(client, {
          scope: form.scope(),
          audiences: audiences(form),
        });
        break;
      case GRANT_TYPES.refreshToken:
        response = await tokens.refresh(client, boundedToken(form, 'refresh_token'), form.scope());
        break;
      case GRANT_TYPES.tokenExchange:
        response = await tokens.openSession(client, {
          subjectToken: form.required('subject_token'),
          subjectTokenType: form.required('subject_token_type'),
          requestedTokenType: form.optional('requested_token_type'),
          claims: sessionClaims(form),
          scope: form.scope(),
          audiences: audiences(form),
        });
        break;
      default:
        throw new OAuthError('unsupported_grant_type', 'grant_type is not supported');
    }
    ctx.metrics.tokensIssued.inc({ grant: grantType });
    return reply.headers(NO_STORE).send(response);
  });
  onlyMethods(app, PATHS.token, ['POST']);

  app.post(PATHS.revocation, async (request, reply) => {
    limitAddress(ctx, request);
    const form = formOf(request);
    form.assertSingleValued();
    const client = await authenticateClient(ctx, request, form);
    // revokd's extension parameter: wait until the connected guards enforce the revocation (docs/api.md).
    const waitMs = parseWaitMs(form.optional('wait_ms'));
    const cursor = await revocation.revokePresentedToken(client, presentedToken(form), tokenTypeHint(form));
    // RFC 7009 §2.2: 200 whether or not the token was known; the body is ignored by clients.
    if (waitMs === undefined) return reply.headers(NO_STORE).send();
    const enforcement =
      cursor === undefined
        ? { cursor: null, enforced_by: [], pending: [], timed_out: false }
        : enforcementView(await ctx.runtime.guardDirectory.waitForCursor(cursor, waitMs));
    return reply.headers(NO_STORE).send({ enforcement });
  });
  onlyMethods(app, PATHS.revocation, ['POST']);

  app.post(PATHS.introspection, async (request, reply) => {
    limitAddress(ctx, request);
    const form = formOf(request);
    form.assertSingleValued();
    const client = await authenticateClient(ctx, request, form);
    const result = await introspection.introspect(client, presentedToken(form), tokenTypeHint(form));
    return reply.headers(NO_STORE).send(result);
  });
  onlyMethods(app, PATHS.introspection, ['POST']);
}

function audiences(form: FormParams): string[] {
  const values = [...form.all('resource'), ...form.all('audience')];
  if (values.length > 16) throw new OAuthError('invalid_target', 'too many audiences');
  return values;
}

function boundedToken(form: FormParams, name: string): string {
  const value = form.required(name);
  if (value.length > 512) throw new OAuthError('invalid_grant', `${name} is invalid`);
  return value;
}

/** The `claims` extension parameter of revokd's token exchange: a JSON object (documented in docs/api.md). */
function sessionClaims(form: FormParams): Record<string, unknown> {
  const raw = form.optional('claims');
  if (raw === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new OAuthError('invalid_request', 'claims must be a JSON object');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new OAuthError('invalid_request', 'claims must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}
