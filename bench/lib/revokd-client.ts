/** What the token-service benchmarks ask of a revokd server as its client, outside the timed work. */
import type { Target } from './token-service-load.ts';

/** `client_secret_basic` credentials (RFC 6749 §2.3.1: form-encoded, then base64). */
export function basicAuthorization(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/**
 * Opens `count` user sessions by token exchange (revokd's login for trusted backends), one per subject `user-<i>`,
 * and returns their first refresh tokens: the chains a refresh benchmark rotates.
 */
export async function openSessions(
  port: number,
  authorization: string,
  resource: string,
  count: number,
): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const response = await fetch(`http://127.0.0.1:${port}/token`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: `user-${i}`,
          subject_token_type: 'urn:revokd:params:oauth:token-type:subject',
          resource,
        }),
      });
      const body = (await response.json()) as { refresh_token?: string };
      if (typeof body.refresh_token !== 'string') throw new Error(`revokd login: ${JSON.stringify(body)}`);
      return body.refresh_token;
    }),
  );
}

/** A revokd server as the load generator drives it: client credentials for `resource`, scope `api:read`. */
export function revokdTarget(name: string, port: number, authorization: string, resource: string): Target {
  const clientCredentials = new URLSearchParams({
    grant_type: 'client_credentials',
    resource,
    scope: 'api:read',
  }).toString();
  return {
    name,
    port,
    tokenPath: '/token',
    revokePath: '/revoke',
    introspectPath: '/introspect',
    authorization,
    issueBody: clientCredentials,
    poolBody: clientCredentials,
  };
}
