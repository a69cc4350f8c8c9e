import type { FastifyRequest } from 'fastify';
import { OAuthError } from '../core/errors.ts';
import type { ClientCredentials } from '../services/clients.ts';
import type { FormParams } from './form.ts';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';
export const CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post'];

/**
 * Reads client credentials from the `Authorization: Basic` header (RFC 6749 §2.3.1, with each part
 * form-urlencoded before base64) or from the body. Using both at once is an error (§2.3).
 * Credentials that are missing or malformed are `invalid_client`, answered with a Basic challenge.
 */
export function readClientCredentials(request: FastifyRequest, form: FormParams): ClientCredentials {
  const header = request.headers.authorization;
  const bodyId = form.optional('client_id');
  const bodySecret = form.optional('client_secret');
  if (header !== undefined) {
    if (bodySecret !== undefined) {
      throw new OAuthError('invalid_request', 'use one client authentication method, not two');
    }
    const credentials = parseBasic(header);
    if (bodyId !== undefined && bodyId !== credentials.clientId) {
      throw new OAuthError('invalid_request', 'client_id does not match the Authorization header');
    }
    return credentials;
  }
  if (bodyId !== undefined && bodySecret !== undefined) return { clientId: bodyId, clientSecret: bodySecret };
  throw new OAuthError('invalid_client', 'client authentication is required');
}

function parseBasic(header: string): ClientCredentials {
  const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(header.trim());
  if (!match) throw new OAuthError('invalid_client', 'malformed Basic credentials');
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) throw new OAuthError('invalid_client', 'malformed Basic credentials');
  try {
    return {
      clientId: formDecode(decoded.slice(0, colon)),
      clientSecret: formDecode(decoded.slice(colon + 1)),
    };
  } catch {
    throw new OAuthError('invalid_client', 'malformed Basic credentials');
  }
}

/** application/x-www-form-urlencoded decoding of one component ('+' is a space). */
function formDecode(value: string): string {
  return decodeURIComponent(value.replaceAll('+', ' '));
}
