import type { VerificationKey } from './key-set.ts';

/** The outcomes of {@link verifyCompactSignature}. */
export const SignatureCheck = Object.freeze({
  Valid: 0,
  /** The signature segment is not canonical base64url (RFC 7515 §2: no padding, no stray bits). */
  Malformed: 1,
  /** The signature does not verify (wrong length, wrong key, tampered input). */
  Invalid: 2,
} as const);
export type SignatureCheck = (typeof SignatureCheck)[keyof typeof SignatureCheck];

/**
 * Verifies the signature of a compact JWS, synchronously: `token` has already been matched against the compact
 * serialization's alphabet, and its second `.` is at `secondDot`. The signing input is the ASCII of
 * `header.payload` (RFC 7515 §5.2); the signature segment is decoded by Node's base64url decoder and must be
 * canonical (a length of 1 mod 4 is refused, as jose refuses it; so are non-zero trailing bits, which jose
 * ignores), so that one signature has one spelling.
 */
export function verifyCompactSignature(
  token: string,
  secondDot: number,
  key: VerificationKey,
): SignatureCheck {
  const encoded = token.slice(secondDot + 1);
  if (encoded.length % 4 === 1) return SignatureCheck.Malformed;
  const signature = Buffer.from(encoded, 'base64url');
  if (signature.length !== key.signatureBytes) return SignatureCheck.Invalid;
  if (signature.toString('base64url') !== encoded) return SignatureCheck.Malformed;
  const signingInput = Buffer.from(token.slice(0, secondDot), 'latin1');
  return key.verify(signingInput, signature) ? SignatureCheck.Valid : SignatureCheck.Invalid;
}
