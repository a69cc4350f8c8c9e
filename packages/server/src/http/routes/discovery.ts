import type { FastifyInstance } from 'fastify';
import { GRANT_TYPES } from '../../config/schema.ts';
import { type HttpContext, onlyMethods } from '../app.ts';
import { CLIENT_AUTH_METHODS } from '../client-auth.ts';

export const PATHS = {
  metadata: '/.well-known/oauth-authorization-server',
  jwks: '/jwks.json',
  token: '/token',
  revocation: '/revoke',
  introspection: '/introspect',
} as const;

/** RFC 8414 metadata and the JWKS (RFC 7517). No OpenID discovery: revokd has no authorization endpoint yet. */
export function discoveryRoutes(app: FastifyInstance, { runtime }: HttpContext): void {
  const { config, keyring } = runtime;
  const url = (path: string) => `${config.issuer}${path}`;
  const metadata = Object.freeze({
    issuer: config.issuer,
    token_endpoint: url(PATHS.token),
    jwks_uri: url(PATHS.jwks),
    revocation_endpoint: url(PATHS.revocation),
    introspection_endpoint: url(PATHS.introspection),
    grant_types_supported: Object.values(GRANT_TYPES),
    // RFC 8414 §2 requires this member; revokd has no authorization endpoint, so it supports no response type.
    response_types_supported: [],
    token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    service_documentation: 'https://github.com/revokd/revokd/blob/main/docs/api.md',
  });

  app.get(PATHS.metadata, (_request, reply) =>
    reply.header('cache-control', 'public, max-age=300').send(metadata),
  );
  onlyMethods(app, PATHS.metadata, ['GET']);

  app.get(PATHS.jwks, (_request, reply) =>
    reply.header('cache-control', 'public, max-age=60').type('application/jwk-set+json').send(keyring.jwks),
  );
  onlyMethods(app, PATHS.jwks, ['GET']);
}
