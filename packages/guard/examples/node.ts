/** Plain node:http: wrap a listener with `withGuard`, or decide by hand with `guardRequest` + `sendRejection`. */
import { createServer } from 'node:http';
import { guardRequest, sendRejection, withGuard } from '@revokd/guard/node';
import { guard } from './guard.ts';

const me = withGuard(guard, (_req, res, auth) => res.end(JSON.stringify({ user: auth.claims.sub })), {
  realm: 'api',
});

/** Keep options objects constant: they are validated on first use. */
const ORDERS = { realm: 'api', scopes: ['orders:read'] };

const server = createServer(async (req, res) => {
  if (req.url === '/me') return me(req, res);
  const decision = guardRequest(guard, req, ORDERS);
  if (!decision.ok) return sendRejection(res, decision, ORDERS); // 401, 403 or 503, with the challenge
  res.end(JSON.stringify({ for: decision.claims.sub, stale: decision.stale === true }));
});

await guard.ready();
server.listen(3000);
