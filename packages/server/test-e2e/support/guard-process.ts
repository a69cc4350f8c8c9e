/**
 * A resource server in its own process, for the end-to-end tests: `node:http` and `createGuard`, nothing else.
 *
 * - `GET /check` → the guard's decision for the request's `Authorization` header: `200 { ok, sub, stale }`, or
 *   the rejection's status with `{ ok: false, reason, revokedBy }`.
 * - `GET /health` → `guard.health()` plus counts of the guard's events (`snapshot`, `reset`, and the cursors
 *   each stream resumed from).
 *
 * Configured by environment: `GUARD_ISSUER`, `GUARD_SERVER_URL` (default the issuer), `GUARD_CLIENT_ID`,
 * `GUARD_CLIENT_SECRET`, `GUARD_ID`, `GUARD_AUDIENCE` (default `https://api.example.com`),
 * `GUARD_MAX_STALENESS_MS` (default 1500), `GUARD_STALE_POLICY` (`reject`, the default, or `accept`), and
 * `GUARD_REDIS_URL` or `GUARD_REDIS_CLUSTER_NODES` (`host:port,...`): follow the Redis stream, falling back to the
 * server's HTTP stream while Redis is unreachable.
 * Prints one JSON line `{ "port", "guardId" }` on stdout once the guard is ready and the port listens.
 */
import { subscribe } from 'node:diagnostics_channel';
import { createServer } from 'node:http';
import {
  createGuard,
  type FeedTransport,
  GUARD_CHANNEL,
  type GuardDecision,
  type GuardEvent,
  httpFeed,
  type StalePolicy,
} from '@revokd/guard';
import { redisFeed } from '@revokd/guard/redis';
import { Cluster, Redis } from 'ioredis';

function env(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
}

const events = { snapshot: 0, reset: 0, resumedFrom: [] as number[] };
// Subscribed before the guard starts, so the first snapshot is counted.
subscribe(GUARD_CHANNEL, (message) => {
  const event = message as GuardEvent;
  if (event.type === 'snapshot') events.snapshot += 1;
  else if (event.type === 'reset') events.reset += 1;
  else if (event.type === 'connected') events.resumedFrom.push(event.after);
});

const issuer = env('GUARD_ISSUER');

function feeds(): FeedTransport[] {
  const url = process.env.GUARD_REDIS_URL;
  const clusterNodes = process.env.GUARD_REDIS_CLUSTER_NODES;
  if (url === undefined && clusterNodes === undefined) return [httpFeed()];
  const client =
    clusterNodes !== undefined
      ? new Cluster(
          clusterNodes.split(',').map((node) => {
            const [host, port] = node.split(':');
            return { host: host ?? '127.0.0.1', port: Number(port) };
          }),
        )
      : new Redis(url ?? '', { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  return [redisFeed({ client }), httpFeed()];
}
const guard = createGuard({
  issuer,
  serverUrl: env('GUARD_SERVER_URL', issuer),
  audience: env('GUARD_AUDIENCE', 'https://api.example.com'),
  clientId: env('GUARD_CLIENT_ID'),
  clientSecret: env('GUARD_CLIENT_SECRET'),
  guardId: env('GUARD_ID'),
  maxStalenessMs: Number(env('GUARD_MAX_STALENESS_MS', '1500')),
  stalePolicy: env('GUARD_STALE_POLICY', 'reject') as StalePolicy,
  reconnect: { initialDelayMs: 50, maxDelayMs: 300 },
  feed: feeds(),
  feedRetryIntervalMs: 2000,
  readyTimeoutMs: 15_000,
});

const server = createServer((request, response) => {
  const send = (status: number, body: unknown) => {
    response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    response.end(JSON.stringify(body));
  };
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (request.method === 'GET' && path === '/check') {
    let decision: GuardDecision;
    try {
      decision = guard.check(request.headers.authorization);
    } catch (error) {
      send(500, { ok: false, reason: String(error) });
      return;
    }
    if (decision.ok) send(200, { ok: true, sub: decision.claims.sub, stale: decision.stale === true });
    else {
      send(decision.status, {
        ok: false,
        reason: decision.reason,
        revokedBy: 'revokedBy' in decision ? decision.revokedBy : undefined,
      });
    }
    return;
  }
  if (request.method === 'GET' && path === '/health') {
    send(200, { ...guard.health(), events });
    return;
  }
  send(404, { error: 'not_found' });
});

const shutdown = () => {
  server.close();
  server.closeAllConnections();
  void guard.close().finally(() => process.exit(0));
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

await guard.ready();
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port, guardId: guard.health().guardId })}\n`);
});
