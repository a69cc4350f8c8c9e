/**
 * Child process of `token-service`: the harness floor. A bare `node:http` server on a loopback port that does no
 * work at all: it reads each request and answers with a canned body the load generator accepts (a three-segment
 * "access token", a fresh refresh token, `200` for a revocation, `{"active":true}` for an introspection). What the
 * load generator reaches against it is the most any server can show in this harness, on this machine, in this
 * run: the load generator's own time per request plus the loopback round trip.
 *
 * IPC: sends `{ port }` once listening; exits when the parent disconnects or on SIGTERM.
 */
import { createServer } from 'node:http';

let refreshed = 0;

function body(path: string, form: string): string | undefined {
  if (path === '/revoke') return undefined;
  if (path === '/introspect') return '{"active":true}';
  const refresh = form.startsWith('grant_type=refresh_token');
  refreshed += refresh ? 1 : 0;
  return JSON.stringify({
    access_token: 'floor.floor.floor',
    token_type: 'Bearer',
    expires_in: 300,
    ...(refresh ? { refresh_token: `floor-${refreshed}` } : {}),
  });
}

const server = createServer((req, res) => {
  let form = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => {
    form += chunk;
  });
  req.on('end', () => {
    const text = body(req.url ?? '', form);
    res.writeHead(200, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'content-length': text === undefined ? 0 : Buffer.byteLength(text),
    });
    res.end(text);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  process.send?.({ port: address.port });
});
process.on('disconnect', () => process.exit(0));
process.once('SIGTERM', () => process.exit(0));
