/**
 * A scripted revokd server behind an injected `fetch`: metadata, JWKS, snapshot and event streams that the
 * test writes to. Records every request, so tests can assert what the guard fetched (and what it never did).
 */
import type { JWK } from 'jose';
import { encodeEntriesFrame, encodeHeartbeatFrame, encodeResetFrame } from '../../src/feed/wire.ts';
import { basicAuthorization } from '../../src/http/fetch.ts';
import type { LogEntry, Rule } from '../../src/model/rule.ts';

export const BASE = 'https://issuer.test';
export const CLIENT = { id: 'api', secret: 's3cret' };

export interface FakeStream {
  readonly after: number;
  readonly closed: boolean;
  send(text: string): void;
  entries(entries: readonly LogEntry[]): void;
  heartbeat(cursor: number, serverTimeMs?: number): void;
  reset(cursor: number): void;
  /** The server ends the stream. */
  end(): void;
}

export class FakeServer {
  jwks: { keys: JWK[] } = { keys: [] };
  snapshot: { cursor: number; rules: Rule[] } = { cursor: 0, rules: [] };
  /** Status to answer on the snapshot, instead of the snapshot. */
  snapshotStatus: number | undefined;
  /** Request paths (with query), in order. */
  readonly requests: string[] = [];
  /** Receipts POSTed by the guard (parsed JSON bodies), in order. */
  readonly receipts: Array<{ guardId: string; cursor: number }> = [];
  /** Status answered to receipts. Default 204. */
  receiptStatus = 204;
  readonly streams: FakeStream[] = [];
  #waiters: Array<() => void> = [];

  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    // Like the real fetch: an already aborted request fails at once.
    if (init?.signal?.aborted) throw init.signal.reason;
    const url = new URL(String(input));
    this.requests.push(`${url.origin === BASE ? '' : url.origin}${url.pathname}${url.search}`);
    if (url.origin !== BASE) throw new TypeError('fetch failed: unknown host');
    const headers = new Headers(init?.headers);
    const authorized = headers.get('authorization') === basicAuthorization(CLIENT.id, CLIENT.secret);
    switch (url.pathname) {
      case '/.well-known/oauth-authorization-server':
        return json({ issuer: BASE, jwks_uri: `${BASE}/jwks.json` });
      case '/jwks.json':
        return json(this.jwks);
      case '/revocations/snapshot':
        if (!authorized) return json({ error: 'invalid_client' }, 401);
        if (this.snapshotStatus !== undefined) return json({ error: 'x' }, this.snapshotStatus);
        return json(this.snapshot);
      case '/revocations/receipts':
        if (!authorized || init?.method !== 'POST') return json({ error: 'invalid_client' }, 401);
        this.receipts.push(JSON.parse(String(init.body)));
        return new Response(null, { status: this.receiptStatus });
      case '/revocations/stream':
        if (!authorized) return json({ error: 'invalid_client' }, 401);
        return this.#stream(Number(url.searchParams.get('after')), init?.signal ?? undefined);
      default:
        return json({ error: 'not_found' }, 404);
    }
  };

  count(prefix: string): number {
    return this.requests.filter((r) => r.startsWith(prefix)).length;
  }

  /** Resolves when the next stream opens (or at once if `index` is already open). */
  async stream(index: number, timeoutMs = 2000): Promise<FakeStream> {
    const deadline = Date.now() + timeoutMs;
    while (this.streams.length <= index) {
      if (Date.now() > deadline) throw new Error(`stream ${index} never opened`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
    return this.streams[index]!;
  }

  #stream(after: number, signal: AbortSignal | undefined): Response {
    const encoder = new TextEncoder();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let closed = false;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      cancel() {
        closed = true;
      },
    });
    const close = (error?: unknown) => {
      if (closed) return;
      closed = true;
      if (error) controller.error(error);
      else controller.close();
    };
    signal?.addEventListener('abort', () => close(signal.reason));
    const send = (text: string) => {
      if (!closed) controller.enqueue(encoder.encode(text));
    };
    const stream: FakeStream = {
      after,
      get closed() {
        return closed;
      },
      send,
      entries: (entries) => send(encodeEntriesFrame(entries)),
      heartbeat: (cursor, serverTimeMs = 0) => send(encodeHeartbeatFrame({ cursor, serverTimeMs })),
      reset: (cursor) => {
        send(encodeResetFrame({ reason: 'cursor_ahead', cursor }));
        close();
      },
      end: () => close(),
    };
    this.streams.push(stream);
    for (const wake of this.#waiters.splice(0)) wake();
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
  }
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } });
}

export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeoutMs = 2000, what = 'condition' } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
