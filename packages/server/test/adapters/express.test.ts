/** The shared adapter suite against Express 5 and `@revokd/guard/express`. */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { expressGuard, requireScope } from '@revokd/guard/express';
import express, { type RequestHandler } from 'express';
import { runAdapterSuite, whoami } from './adapter-cases.ts';

runAdapterSuite('express', async (routes) => {
  const app = express();
  for (const route of routes) {
    const chain: RequestHandler[] = [expressGuard(route.guard, route.options)];
    if (route.requireScope) chain.push(requireScope(route.requireScope.scope, route.requireScope.options));
    app.get(route.path, ...chain, (req, res) => {
      // The same acceptance is on the request and in res.locals.
      if (res.locals.auth !== req.auth) throw new Error('res.locals.auth differs from req.auth');
      res.json(whoami(req.auth));
    });
  }

  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
});
