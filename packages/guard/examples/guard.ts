/** The guard every example shares: one per process, started once. */
import { createGuard } from '@revokd/guard';

export const guard = createGuard({
  issuer: 'https://auth.example.com',
  audience: 'https://api.example.com',
  clientId: 'api',
  clientSecret: process.env.REVOKD_CLIENT_SECRET ?? '',
  stalePolicy: 'reject', // the default: fail closed when the revocation feed cannot be confirmed
});
