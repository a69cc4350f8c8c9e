/** Express 5: `expressGuard` puts the token on `req.auth` (and `res.locals.auth`). */
import { expressGuard, requireScope } from '@revokd/guard/express';
import express from 'express';
import { guard } from './guard.ts';

const app = express();
const auth = expressGuard(guard, { realm: 'api' });

app.get('/me', auth, (req, res) => {
  res.json({ user: req.auth!.claims.sub });
});
// 403 insufficient_scope, scope="orders:write", unless the token carries the scope.
app.post('/orders', auth, requireScope('orders:write', { realm: 'api' }), (req, res) => {
  res.status(201).json({ by: req.auth!.claims.sub });
});
// Keeps serving when the guard is stale (the auth is then marked `stale: true`).
app.get('/catalog', expressGuard(guard, { realm: 'api', stalePolicy: 'accept' }), (req, res) => {
  res.json({ stale: req.auth!.stale === true });
});

await guard.ready();
app.listen(3000);
