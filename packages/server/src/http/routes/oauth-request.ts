import type { FastifyRequest } from 'fastify';
import { OAuthError } from '../../core/errors.ts';
import type { TokenTypeHint } from '../../services/revocation.ts';
import type { ClientRecord } from '../../store/port.ts';
import type { HttpContext } from '../app.ts';
import { readClientCredentials } from '../client-auth.ts';
import { FormParams } from '../form.ts';

/** The form body of an OAuth endpoint; anything else is `invalid_request` (RFC 6749 §3.2, RFC 7009 §2.1). */
export function formOf(request: FastifyRequest): FormParams {
  if (request.body instanceof FormParams) return request.body;
  throw new OAuthError('invalid_request', 'the body must be application/x-www-form-urlencoded');
}

/** Applies the per-address limit; call before any work is done for the request. */
export function limitAddress(ctx: HttpContext, request: FastifyRequest): void {
  const decision = ctx.addressLimiter?.take(request.ip, ctx.runtime.clock.nowMs());
  if (decision && !decision.allowed) throw rateLimited(decision.retryAfterSeconds);
}

/** Authenticates the calling client (Basic or body credentials) and applies its rate limit. */
export async function authenticateClient(
  ctx: HttpContext,
  request: FastifyRequest,
  form: FormParams,
): Promise<ClientRecord> {
  const client = await ctx.runtime.clients.authenticate(readClientCredentials(request, form));
  const decision = ctx.clientLimiter?.take(client.id, ctx.runtime.clock.nowMs());
  if (decision && !decision.allowed) throw rateLimited(decision.retryAfterSeconds);
  return client;
}

/**
 * `token_type_hint` (RFC 7009 §2.1, RFC 7662 §2.1). An unknown hint is ignored and every token type is
 * searched, as RFC 7009 allows.
 */
export function tokenTypeHint(form: FormParams): TokenTypeHint {
  const hint = form.optional('token_type_hint');
  return hint === 'access_token' || hint === 'refresh_token' ? hint : undefined;
}

/** The presented token, bounded in size so a hostile body cannot make us hash or parse megabytes. */
export function presentedToken(form: FormParams): string {
  const token = form.required('token');
  if (token.length > 8192) throw new OAuthError('invalid_request', 'token is too long');
  return token;
}

function rateLimited(retryAfterSeconds: number): OAuthError {
  return new OAuthError('temporarily_unavailable', 'rate limit exceeded', { status: 429, retryAfterSeconds });
}
