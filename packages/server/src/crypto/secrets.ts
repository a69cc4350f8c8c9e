import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 bits of randomness, base64url: used for client secrets and refresh tokens. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** A short random identifier (128 bits) for sessions, families and keys' bookkeeping. */
export function randomId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * Hash of a high-entropy secret (a generated client secret or refresh token), as stored. SHA-256 is enough
 * because the input has 256 bits of entropy: there is nothing to brute-force, so a slow password hash would
 * only cost throughput.
 */
export function hashSecret(secret: string): string {
  return `sha256:${createHash('sha256').update(secret, 'utf8').digest('base64url')}`;
}

/** Compares a presented secret with a stored hash in constant time. */
export function secretMatches(presented: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(presented), 'utf8');
  const b = Buffer.from(storedHash, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The successor of a refresh token: a keyed function of the token itself, so presenting the same token again
 * within the grace period yields the same successor without the server ever storing a token in clear.
 */
export function deriveSuccessorToken(presented: string, rotationKey: string): string {
  return createHmac('sha256', Buffer.from(rotationKey, 'base64url'))
    .update(presented, 'utf8')
    .digest('base64url');
}
