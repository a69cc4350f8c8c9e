import pg from 'pg';

/** The channel every transaction that appends to the log notifies, at commit. */
export const LOG_CHANNEL = 'revokd_log';
/** The channel every transaction that creates, changes or deletes a client notifies, at commit. */
export const CLIENTS_CHANNEL = 'revokd_clients';

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;
/**
 * How often the idle LISTEN connection is probed. A restart closes the connection, which is noticed at once; a
 * silent network failure is noticed only by a query that gets no answer (TCP keepalive takes far longer).
 */
const HEARTBEAT_MS = 10_000;

export interface LogListenerOptions {
  readonly client: pg.ClientConfig;
  /** Notifications carrying this payload are this store's own commits, announced already: ignored. */
  readonly ownPayload: string;
  /** Another process committed log entries, or notifications may have been missed (after a reconnect). */
  readonly onRemoteCommit: () => void;
  /**
   * A client was created, changed or deleted (by any process, this one included), or notifications may have been
   * missed: the connection was lost (called at once) or is listening again.
   */
  readonly onClientsChanged?: (() => void) | undefined;
}

/**
 * One dedicated connection that `LISTEN`s on {@link LOG_CHANNEL}. When it is lost (PostgreSQL restarted, the
 * network failed) it reconnects with exponential backoff, and once listening again reports a remote commit,
 * since notifications sent meanwhile are gone.
 */
export class LogListener {
  readonly #options: LogListenerOptions;
  #client: pg.Client | undefined;
  #retryMs = FIRST_RETRY_MS;
  #timer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: LogListenerOptions) {
    this.#options = options;
  }

  /** Connects and listens; rejects when PostgreSQL cannot be reached. */
  async start(): Promise<void> {
    this.#client = await this.#listen();
    this.#heartbeat = setInterval(() => {
      const client = this.#client;
      // The client's query_timeout bounds the probe; a probe that fails means the connection is gone.
      client?.query('SELECT 1').catch(() => this.#lost(client));
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Whether the LISTEN connection is up now. */
  get listening(): boolean {
    return this.#client !== undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#heartbeat);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }

  async #listen(): Promise<pg.Client> {
    const client = new pg.Client(this.#options.client);
    let gone = false;
    const onGone = () => {
      gone = true;
      this.#lost(client);
    };
    client.on('error', onGone);
    client.on('end', onGone);
    client.on('notification', (message) => {
      if (message.channel === LOG_CHANNEL && message.payload !== this.#options.ownPayload) this.#report();
      else if (message.channel === CLIENTS_CHANNEL) this.#clientsChanged();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${LOG_CHANNEL}; LISTEN ${CLIENTS_CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    if (this.#closed || gone) {
      await client.end().catch(() => {});
      throw new Error(gone ? 'connection lost while starting to listen' : 'closed');
    }
    return client;
  }

  #lost(client: pg.Client): void {
    if (client !== this.#client) return; // still connecting: the attempt itself reports the failure
    this.#client = undefined;
    this.#clientsChanged();
    void client.end().catch(() => {});
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed) return;
    const delay = this.#retryMs;
    this.#retryMs = Math.min(MAX_RETRY_MS, this.#retryMs * 2);
    this.#timer = setTimeout(async () => {
      try {
        this.#client = await this.#listen();
      } catch {
        this.#scheduleReconnect();
        return;
      }
      this.#retryMs = FIRST_RETRY_MS;
      this.#report();
      this.#clientsChanged();
    }, delay);
    // Reconnecting alone must not keep a process alive that has nothing else to do.
    this.#timer.unref();
  }

  #clientsChanged(): void {
    try {
      this.#options.onClientsChanged?.();
    } catch {
      // As for #report.
    }
  }

  #report(): void {
    try {
      this.#options.onRemoteCommit();
    } catch {
      // A listener's failure is its own; the next notification or the caller's polling catches up.
    }
  }
}
