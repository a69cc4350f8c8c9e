import type { TokenFacts } from './rule.ts';

/**
 * Private claim carrying the issuance instant in microseconds since the epoch. `iat` has whole seconds only,
 * which cannot tell a token issued just before a not-before rule from one issued just after it.
 */
export const ISSUED_AT_US_CLAIM = 'iat_us';
/** Private claim naming the refresh-token family an access token was minted from. */
export const FAMILY_CLAIM = 'fid';

/**
 * Extracts what the revocation check needs from a verified JWT payload. `iat_us` is trusted only when it lies
 * within `iat`'s second; otherwise the token is treated as having only second precision.
 */
export function tokenFacts(payload: Readonly<Record<string, unknown>>): TokenFacts {
  const iat = typeof payload.iat === 'number' && Number.isFinite(payload.iat) ? payload.iat : 0;
  const iatUs = payload[ISSUED_AT_US_CLAIM];
  const exact =
    typeof iatUs === 'number' && Number.isSafeInteger(iatUs) && Math.floor(iatUs / 1_000_000) === iat;
  return {
    jti: stringOrUndefined(payload.jti),
    sub: stringOrUndefined(payload.sub),
    clientId: stringOrUndefined(payload.client_id),
    sid: stringOrUndefined(payload.sid),
    fid: stringOrUndefined(payload[FAMILY_CLAIM]),
    issuedAtUs: exact ? (iatUs as number) : iat * 1_000_000,
    exactIssuedAt: exact,
    claims: payload,
  };
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
