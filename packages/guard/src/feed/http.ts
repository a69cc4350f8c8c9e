import { GuardError } from '../errors.ts';
import { describe, statusError } from '../http/fetch.ts';
import { type SseEvent, SseLimitError, SseParser } from './sse.ts';
import type { FeedConnection, FeedTransport } from './transport.ts';
import {
  FEED_PATHS,
  parseEntriesFrame,
  parseHeartbeatFrame,
  parseResetFrame,
  STREAM_EVENTS,
} from './wire.ts';

/**
 * The server's revocation stream (`GET /revocations/stream`, Server-Sent Events): the default transport, and
 * the fallback for any other. It needs nothing but network access to the server. The stream is resumed from
 * the applied cursor, names the guard (`guard_id`, so the server lists it and accepts its receipts) and asks
 * for heartbeats at the guard's period.
 */
export function httpFeed(): FeedTransport {
  return HTTP_FEED;
}

const HTTP_FEED: FeedTransport = Object.freeze({ name: 'http', follow: followStream });

async function followStream(connection: FeedConnection): Promise<void> {
  const idle = new AbortController();
  const signal = AbortSignal.any([connection.signal, idle.signal]);
  const watchdog = setTimeout(() => idle.abort(), connection.idleTimeoutMs);
  const query = new URLSearchParams({
    after: String(connection.after),
    heartbeat_ms: String(connection.heartbeatMs),
  });
  if (connection.guardId !== undefined) query.set('guard_id', connection.guardId);
  const url = `${connection.serverUrl.replace(/\/+$/, '')}${FEED_PATHS.stream}?${query}`;
  try {
    let response: Response;
    try {
      response = await connection.fetch(url, {
        headers: {
          accept: 'text/event-stream',
          authorization: connection.authorization,
          'cache-control': 'no-store',
        },
        signal,
        redirect: 'error',
      });
    } catch (cause) {
      if (connection.signal.aborted) return;
      throw new GuardError('REVOKD_GUARD_HTTP', `GET ${url} failed: ${describe(cause)}`, { cause });
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel().catch(() => {});
      throw statusError(url, response.status);
    }
    if (!(response.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream')) {
      await response.body.cancel().catch(() => {});
      throw new GuardError('REVOKD_GUARD_PROTOCOL', `GET ${url}: not an event stream`);
    }
    connection.connected();
    const parser = new SseParser({
      onEvent: (event) => onEvent(connection, event),
      maxEventChars: connection.maxEventChars,
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body) {
        watchdog.refresh();
        parser.push(decoder.decode(chunk, { stream: true }));
        // A reset (or the guard closing) ends this connection; the rest of the stream is not read.
        if (connection.signal.aborted) break;
      }
    } catch (cause) {
      if (cause instanceof GuardError) throw cause;
      if (cause instanceof SseLimitError) throw new GuardError('REVOKD_GUARD_PROTOCOL', cause.message);
      if (connection.signal.aborted) return;
      if (idle.signal.aborted) {
        throw new GuardError('REVOKD_GUARD_HTTP', `GET ${url}: no data for ${connection.idleTimeoutMs} ms`);
      }
      throw new GuardError('REVOKD_GUARD_HTTP', `GET ${url}: stream failed: ${describe(cause)}`, { cause });
    } finally {
      parser.end();
    }
    if (!connection.signal.aborted) {
      throw new GuardError('REVOKD_GUARD_HTTP', `GET ${url}: the server ended the stream`);
    }
  } finally {
    clearTimeout(watchdog);
    idle.abort();
  }
}

function onEvent(connection: FeedConnection, event: SseEvent): void {
  if (connection.signal.aborted) return;
  switch (event.type) {
    case STREAM_EVENTS.entries: {
      const entries = parseEntriesFrame(event.data);
      if (entries === undefined) throw new GuardError('REVOKD_GUARD_PROTOCOL', 'invalid entries frame');
      connection.entries(entries);
      return;
    }
    case STREAM_EVENTS.heartbeat: {
      const heartbeat = parseHeartbeatFrame(event.data);
      if (heartbeat === undefined) throw new GuardError('REVOKD_GUARD_PROTOCOL', 'invalid heartbeat frame');
      connection.heartbeat(heartbeat);
      return;
    }
    case STREAM_EVENTS.reset: {
      const reset = parseResetFrame(event.data);
      connection.reset(reset?.reason ?? 'reset', reset?.cursor ?? 0);
      return;
    }
    default:
      // Unknown event types are ignored, so the server can add new ones.
      return;
  }
}
