/**
 * Cluster mode fan-out: every server node relays the revocation log it applies to one Redis stream, which
 * guards may follow (`@revokd/guard/redis`) instead of a node's event stream. Redis is a copy for fan-out; the
 * store stays the truth, so a revocation never waits for Redis and never fails because of it.
 */
import { performance } from 'node:perf_hooks';
import type { LogEntry } from '@revokd/guard';
import { REDIS_FEED_STREAM_KEY, redisCompanionKey } from '@revokd/guard/redis';
import type { Cluster, Redis } from 'ioredis';
import { HEARTBEAT_SCRIPT, PUBLISH_SCRIPT } from './redis-scripts.ts';

/** The pino methods the relay logs with. */
export interface RelayLogger {
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
}

export interface RedisRelayOptions {
  /** The node's Redis client (ioredis `Redis` or `Cluster`); the relay defines two scripts on it, never quits it. */
  readonly client: Redis | Cluster;
  /** The stream guards follow. Default `{revokd}:log` (the hash tag keeps the feed's keys in one Cluster slot). */
  readonly streamKey?: string;
  /** Records kept in the stream (`XADD MAXLEN ~`, so a little more); older ones are trimmed. Default 100000. */
  readonly maxLength?: number;
  /** Heartbeat period, in milliseconds: the nodes together write one every heartbeatMs / 2 to heartbeatMs. Default 1000. */
  readonly heartbeatMs?: number;
  /** The store's log: entries after a cursor, ascending (`Store.readLog`). Used to fill what the stream misses. */
  readonly readLog: (after: number, limit: number) => Promise<LogEntry[]>;
  /** The cursor this node has applied (`RevocationService.index.cursor`). */
  readonly cursor: () => number;
  /** Milliseconds since the epoch: the heartbeats' `serverTimeMs`. */
  readonly now: () => number;
  readonly logger?: RelayLogger;
  /** A Redis command (or log read) unanswered this long counts as failed, in milliseconds. Default 2000. */
  readonly timeoutMs?: number;
}

/** Counters of one relay, for metrics. */
export interface RedisRelayStats {
  /** The stream's last entries cursor, as last seen; undefined before the first answer or while it is empty. */
  readonly head: number | undefined;
  /** Log entries this relay added to the stream (entries another node had added are not counted). */
  readonly entriesAdded: number;
  readonly heartbeats: number;
  /** Failed Redis commands or log reads. */
  readonly errors: number;
  /** The last attempt failed: publishing resumes (catching up from the log) on the next heartbeat tick. */
  readonly failing: boolean;
  /**
   * The stream reaches beyond everything this deployment's log holds: it is another log's (a database restored from
   * a backup, a new database, or another deployment on the same key). Guards following it cannot catch up; an
   * operator must delete the key (or give this deployment its own `streamKey`). Checked on each heartbeat tick.
   */
  readonly foreignStream: boolean;
}

/** Entries per stream record and per log read. */
const BATCH_ENTRIES = 1000;
/** Entries queued while Redis is slow; beyond, the queue is dropped and the relay catches up from the log. */
const MAX_QUEUED_ENTRIES = 100_000;
/** Script calls one delivery or tick may take before the relay gives up on it (guards against livelock). */
const MAX_ROUNDS = 10_000;

const PUBLISH = 'revokdRelayPublish';
const HEARTBEAT = 'revokdRelayHeartbeat';

type ScriptStatus = 'added' | 'dup' | 'gap' | 'sync' | 'expired' | 'empty' | 'behind' | 'recent' | 'beat';
interface ScriptReply {
  readonly status: ScriptStatus;
  readonly head: number | undefined;
  /** Entries added (publish script). */
  readonly added: number;
}
type ScriptCommand = (...args: Array<string | number>) => Promise<unknown>;

/**
 * Publishes the log this node applies to the Redis stream, in cursor order, each entry once, whichever node
 * committed it: every node runs a relay and the Lua scripts drop what another node added first. A batch that
 * does not continue the stream (Redis lost entries, this node was not publishing) is preceded by the missing
 * part of the log, read from the store; entries the log no longer has (pruned as expired) are skipped. Every
 * `heartbeatMs` the relay checks the stream against the node's cursor, catches up if it is behind, and adds a
 * heartbeat unless another node just did. When Redis fails it logs once, counts, drops its queue and catches up
 * from the log on the next tick after Redis answers again.
 */
export class RedisRelay {
  readonly #client: Redis | Cluster;
  readonly #streamKey: string;
  readonly #heartbeatKey: string;
  readonly #maxLength: number;
  readonly #heartbeatMs: number;
  readonly #timeoutMs: number;
  readonly #readLog: RedisRelayOptions['readLog'];
  readonly #cursor: () => number;
  readonly #now: () => number;
  readonly #logger: RelayLogger | undefined;
  readonly #publish: ScriptCommand;
  readonly #heartbeat: ScriptCommand;
  /** Batches to publish, each a run of consecutive entries; adjacent runs are merged when sent. */
  #queue: LogEntry[][] = [];
  #queued = 0;
  #beatDue = false;
  #running = false;
  #worker: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Redis clock minus `performance.now()`, from the last script answer. */
  #redisOffsetMs: number | undefined;
  #head: number | undefined;
  #entriesAdded = 0;
  #heartbeats = 0;
  #foreign = false;
  #errors = 0;
  #failing = false;

  constructor(options: RedisRelayOptions) {
    this.#client = options.client;
    this.#streamKey = options.streamKey ?? REDIS_FEED_STREAM_KEY;
    this.#heartbeatKey = redisCompanionKey(this.#streamKey, 'heartbeat');
    this.#maxLength = positiveInteger(options.maxLength, 100_000, 'maxLength');
    this.#heartbeatMs = positiveInteger(options.heartbeatMs, 1000, 'heartbeatMs');
    this.#timeoutMs = positiveInteger(options.timeoutMs, 2000, 'timeoutMs');
    this.#readLog = options.readLog;
    this.#cursor = options.cursor;
    this.#now = options.now;
    this.#logger = options.logger;
    this.#client.defineCommand(PUBLISH, { numberOfKeys: 1, lua: PUBLISH_SCRIPT });
    this.#client.defineCommand(HEARTBEAT, { numberOfKeys: 2, lua: HEARTBEAT_SCRIPT });
    const commands = this.#client as unknown as Record<string, ScriptCommand>;
    this.#publish = commands[PUBLISH]!.bind(this.#client);
    this.#heartbeat = commands[HEARTBEAT]!.bind(this.#client);
  }

  /**
   * Queues entries this node has applied (`RevocationService.onApplied`: consecutive, in cursor order) for the
   * stream. Returns at once: publishing runs in the background, one Redis call at a time, and never throws.
   */
  publish(entries: readonly LogEntry[]): void {
    if (this.#closed || entries.length === 0) return;
    // While Redis fails, the next tick catches up from the log: queuing would only pile up work.
    if (this.#failing) return;
    if (this.#queued + entries.length > MAX_QUEUED_ENTRIES) {
      this.#dropQueue();
      this.#beatDue = true;
    } else {
      this.#queue.push([...entries]);
      this.#queued += entries.length;
    }
    this.#kick();
  }

  /** Starts the heartbeat timer; the first tick (at once) also publishes whatever the stream misses. */
  start(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.#beatDue = true;
      this.#kick();
    }, this.#heartbeatMs);
    this.#timer.unref();
    this.#beatDue = true;
    this.#kick();
  }

  /** Resolves once everything queued so far has been published (or has failed). */
  async flush(): Promise<void> {
    while (this.#running) await this.#worker;
  }

  /** Stops the timer and waits (at most `timeoutMs`) for the call in flight. The client is the caller's. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#dropQueue();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#worker,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  get stats(): RedisRelayStats {
    return {
      head: this.#head,
      entriesAdded: this.#entriesAdded,
      heartbeats: this.#heartbeats,
      errors: this.#errors,
      failing: this.#failing,
      foreignStream: this.#foreign,
    };
  }

  #kick(): void {
    if (this.#running || this.#closed) return;
    this.#running = true;
    this.#worker = this.#work();
  }

  async #work(): Promise<void> {
    try {
      for (;;) {
        if (this.#closed) break;
        const batch = this.#nextBatch();
        if (batch !== undefined) {
          await this.#deliver(batch, batch[0]!.cursor - 1);
          continue;
        }
        if (!this.#beatDue) break;
        this.#beatDue = false;
        await this.#tick();
        if (this.#failing) {
          this.#failing = false;
          this.#logger?.info(
            { streamKey: this.#streamKey, head: this.#head },
            'redis relay: publishing again',
          );
        }
      }
    } catch (error) {
      this.#fail(error);
    }
    // No await between the last look at the queue and this: a publish() from now on starts a new worker.
    this.#running = false;
  }

  /** The next run of consecutive queued entries, at most BATCH_ENTRIES long. */
  #nextBatch(): LogEntry[] | undefined {
    const batch: LogEntry[] = [];
    while (this.#queue.length > 0 && batch.length < BATCH_ENTRIES) {
      const run = this.#queue[0]!;
      const last = batch.at(-1);
      if (last !== undefined && run[0]!.cursor !== last.cursor + 1) break;
      const taken = run.splice(0, BATCH_ENTRIES - batch.length);
      for (const entry of taken) batch.push(entry);
      this.#queued -= taken.length;
      if (run.length === 0) this.#queue.shift();
    }
    return batch.length > 0 ? batch : undefined;
  }

  #dropQueue(): void {
    this.#queue = [];
    this.#queued = 0;
  }

  /**
   * Adds `entries`, which hold every log entry in `(after, last]`. When the stream stops short of `after`, the
   * log in between is published first (recursively, from the stream's head); when the log holds nothing there
   * (pruned), the batch continues the stream as it is.
   */
  async #deliver(entries: readonly LogEntry[], after: number): Promise<void> {
    const first = entries[0]!.cursor;
    let claim = after;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const reply = await this.#add(entries, claim);
      if (reply.status !== 'gap') return;
      const head = reply.head!;
      const missing = (await this.#read(head, BATCH_ENTRIES)).filter((entry) => entry.cursor < first);
      if (missing.length === 0) claim = head;
      else await this.#deliver(missing, head);
    }
    throw new Error(`redis relay: entries ${first}… not accepted after ${MAX_ROUNDS} rounds`);
  }

  async #add(entries: readonly LogEntry[], after: number): Promise<ScriptReply> {
    const args: Array<string | number> = [this.#streamKey, String(after), String(this.#maxLength)];
    for (const entry of entries) args.push(String(entry.cursor), JSON.stringify(entry));
    const reply = await this.#call(this.#publish(...args));
    this.#entriesAdded += reply.added;
    return reply;
  }

  /**
   * One heartbeat tick: brings the stream up to this node's cursor (from the log), then adds a heartbeat unless
   * another node has just added one.
   */
  async #tick(): Promise<void> {
    let allowEmpty = false;
    /** The cursor the heartbeat may vouch for: the node's, or less when the log has nothing up to it. */
    let claim = this.#cursor();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const deadline =
        this.#redisOffsetMs === undefined
          ? 0
          : Math.ceil(performance.now() + this.#redisOffsetMs + this.#timeoutMs);
      const reply = await this.#call(
        this.#heartbeat(
          this.#streamKey,
          this.#heartbeatKey,
          String(claim),
          JSON.stringify(this.#now()),
          String(this.#heartbeatMs),
          String(this.#maxLength),
          String(deadline),
          allowEmpty ? '1' : '0',
        ),
      );
      switch (reply.status) {
        case 'sync':
          // The Redis clock is known now: the deadline of the real attempt can be set.
          continue;
        case 'beat':
          this.#heartbeats += 1;
          await this.#checkForeign(claim, reply.head);
          return;
        case 'recent':
          await this.#checkForeign(claim, reply.head);
          return;
        case 'expired':
          return;
        case 'behind': {
          // This node has applied entries the stream lacks (their publisher failed or died): publish them,
          // unless more than the stream keeps are missing: then only the last one (consumers behind reset).
          const head = reply.head!;
          if (claim - head > this.#maxLength && (await this.#restartFrom(claim))) continue;
          const page = await this.#read(head, BATCH_ENTRIES);
          const upTo = page.filter((entry) => entry.cursor <= claim);
          // Nothing in (head, claim] any more (pruned): the heartbeat can vouch for the head.
          if (upTo.length === 0) claim = head;
          else await this.#deliver(upTo, head);
          continue;
        }
        case 'empty':
          // Redis lost the stream (restarted empty): start it again from this node's last entry, or, when the
          // log has nothing from there (pruned), with the heartbeat alone.
          if (!(await this.#restartFrom(claim))) allowEmpty = true;
          continue;
        default:
          throw new Error(`redis relay: unexpected heartbeat answer ${reply.status}`);
      }
    }
    throw new Error(`redis relay: no heartbeat after ${MAX_ROUNDS} rounds`);
  }

  /**
   * A stream ahead of this node is normal while the node catches up; ahead of the whole log it is not: every entry
   * of this deployment's stream was committed before it was published, so the log holds everything up to the head.
   */
  async #checkForeign(claim: number, head: number | undefined): Promise<void> {
    const foreign = head !== undefined && head > claim && (await this.#read(claim, 1)).length === 0;
    if (foreign && !this.#foreign) {
      this.#logger?.warn(
        { streamKey: this.#streamKey, streamHead: head, logHead: claim },
        'redis relay: the stream is ahead of this deployment’s log (a restored or new database, or another ' +
          'deployment on the same key); guards following it cannot catch up: delete the key or set feed.redis.streamKey',
      );
    }
    this.#foreign = foreign;
  }

  /** Publishes the log from `cursor` on, as continuing `cursor - 1`; false when the log has nothing there. */
  async #restartFrom(cursor: number): Promise<boolean> {
    const from = Math.max(0, cursor - 1);
    const tail = await this.#read(from, BATCH_ENTRIES);
    if (tail.length === 0) return false;
    await this.#deliver(tail, from);
    return true;
  }

  /** A script call, failed after `timeoutMs`; its answer, with Redis's clock noted. */
  async #call(command: Promise<unknown>): Promise<ScriptReply> {
    const value = await this.#timed(command, 'redis');
    if (!Array.isArray(value) || typeof value[0] !== 'string' || typeof value[2] !== 'number') {
      throw new Error('redis relay: unexpected script answer');
    }
    this.#redisOffsetMs = value[2] - performance.now();
    const head = value[1] === null || value[1] === undefined ? undefined : Number(value[1]);
    if (value[0] === 'empty') this.#head = undefined;
    else if (head !== undefined) this.#head = head;
    return { status: value[0] as ScriptStatus, head, added: typeof value[3] === 'number' ? value[3] : 0 };
  }

  #read(after: number, limit: number): Promise<LogEntry[]> {
    return this.#timed(this.#readLog(after, limit), 'store');
  }

  #timed<T>(promise: Promise<T>, what: string): Promise<T> {
    promise.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`redis relay: ${what} did not answer within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  #fail(error: unknown): void {
    this.#errors += 1;
    this.#dropQueue();
    if (this.#failing) return;
    this.#failing = true;
    this.#logger?.warn(
      { err: error, streamKey: this.#streamKey },
      'redis relay: publishing failed; catching up from the log once Redis answers',
    );
  }
}

function positiveInteger(value: number | undefined, fallback: number, key: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`RedisRelay: ${key} must be a positive integer`);
  }
  return value;
}
