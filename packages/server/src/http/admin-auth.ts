import type { FastifyRequest } from 'fastify';
import { ADMIN_AUDIENCE, ADMIN_SCOPE } from '../config/schema.ts';
import { OAuthError } from '../core/errors.ts';
import type { Runtime } from '../runtime.ts';
import { ACCESS_TOKEN_TYP } from '../services/tokens.ts';

/**
 * Authenticates an admin API call: a revokd access token (RFC 6750 Bearer) for audience `urn:revokd:admin`
 * with scope `revokd:admin`, not revoked. Returns the actor name recorded in the audit log.
 */
export async function authenticateAdmin(runtime: Runtime, request: FastifyRequest): Promise<string> {
  request.challengeScheme = 'Bearer';
  const header = request.headers.authorization;
  if (header === undefined) {
    throw new OAuthError('invalid_token', 'a Bearer access token is required', {
      challengeNamesError: false,
    });
  }
  const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(header);
  if (!match) throw new OAuthError('invalid_token', 'a Bearer access token is required');
  let payload: Record<string, unknown>;
  try {
    payload = await runtime.keyring.verify(match[1]!, {
      issuer: runtime.config.issuer,
      typ: ACCESS_TOKEN_TYP,
    });
  } catch {
    throw new OAuthError('invalid_token', 'the access token is invalid or expired');
  }
  const aud = payload.aud;
  const audiences = Array.isArray(aud) ? aud : [aud];
  if (!audiences.includes(ADMIN_AUDIENCE))
    throw new OAuthError('invalid_token', 'the token is not for the admin API');
  if (runtime.revocation.check(payload).revoked)
    throw new OAuthError('invalid_token', 'the access token was revoked');
  const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
  if (!scopes.includes(ADMIN_SCOPE))
    throw new OAuthError('insufficient_scope', `scope ${ADMIN_SCOPE} is required`);
  return `admin:${String(payload.client_id)}`;
}
