/** Hono 4: `honoGuard` sets the typed `auth` variable, read with `c.get('auth')`. */
import { serve } from '@hono/node-server';
import { honoGuard, type RevokdEnv, requireScope } from '@revokd/guard/hono';
import { Hono } from 'hono';
import { guard } from './guard.ts';

const app = new Hono<RevokdEnv>();

app.use('/api/*', honoGuard(guard, { realm: 'api' }));
app.get('/api/me', (c) => c.json({ user: c.get('auth').claims.sub }));
app.post('/api/orders', requireScope('orders:write', { realm: 'api' }), (c) => c.body(null, 201));
// Fails closed even if the guard's own policy were 'accept'.
app.get('/payments', honoGuard(guard, { realm: 'api', stalePolicy: 'reject' }), (c) =>
  c.json({ user: c.get('auth').claims.sub }),
);

await guard.ready();
serve({ fetch: app.fetch, port: 3000 });
