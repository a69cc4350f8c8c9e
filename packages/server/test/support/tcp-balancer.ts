import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A round-robin TCP load balancer for multi-node tests: each new connection goes to the next upstream port; an
 * upstream that refuses the connection (a killed node) is skipped, so clients keep working while one node is down.
 * Connections are not re-balanced once open, as with any layer-4 balancer.
 */
export class TcpBalancer {
  readonly #upstreams: readonly number[];
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #next = 0;
  port = 0;

  constructor(upstreamPorts: readonly number[]) {
    this.#upstreams = upstreamPorts;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<string> {
    const server = createServer((client) => {
      this.#track(client);
      client.pause();
      this.#connect(client, 0);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
    return this.url;
  }

  /** Tries upstreams in round-robin order, each at most once per connection. */
  #connect(client: Socket, tried: number): void {
    if (tried >= this.#upstreams.length || client.destroyed) {
      client.destroy();
      return;
    }
    const port = this.#upstreams[this.#next++ % this.#upstreams.length]!;
    const upstream = connect(port, '127.0.0.1');
    let connected = false;
    upstream.once('error', () => {
      if (!connected) this.#connect(client, tried + 1);
    });
    upstream.once('connect', () => {
      connected = true;
      this.#track(upstream);
      upstream.on('error', () => {});
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.resume();
    });
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
