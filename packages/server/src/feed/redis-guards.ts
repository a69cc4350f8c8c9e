/**
 * The guard registry the nodes of a cluster share, on the Redis the fan-out already uses: one hash of guards
 * (`<stream key>:guards`, in the stream's Cluster slot), written by Lua scripts so that binding a guard id to a
 * client is one atomic conditional write, and a pub/sub channel on which each write that moves a guard's cursor
 * nudges the nodes waiting for guards.
 *
 * Record: field = guard id, value = JSON `{ client, cursor, since, seen, receipt, node, stream }`, every value a
 * decimal string (Lua numbers are doubles; cjson would print large ones in exponent form). `since`, `seen` and
 * `receipt` are Redis's clock in ms (`receipt` "0" before the first), so nodes' clocks do not bear on the TTL;
 * `node` received its last receipt, `stream` has its stream open ("" for none). A guard not seen within the TTL
 * is treated as absent and deleted by the next prune (Redis 7.0 has no per-field expiry).
 */
import { REDIS_FEED_STREAM_KEY, redisCompanionKey } from '@revokd/guard/redis';
import { Cluster, type Redis } from 'ioredis';
import type {
  SharedGuard,
  SharedGuardStore,
  SharedReport,
  SharedReportResult,
} from '../services/cluster-guard-directory.ts';

const PROLOGUE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hash = KEYS[1]
local ttl = tonumber(ARGV[1])
local function live(g) return tonumber(g.seen) >= now - ttl end
`;

/**
 * KEYS[1]: the hash. ARGV: ttlMs, node, channel, prune ("1"/"0"), then (guard id, client id, cursor, kind)
 * for each report. Returns `{ now, result… }`, a result being "taken", "" (not connected until now) or the
 * cursor recorded before.
 */
const REPORT_SCRIPT = `${PROLOGUE}
local node, channel = ARGV[2], ARGV[3]
local out = { tostring(now) }
for i = 5, #ARGV, 4 do
  local id, client, cursor, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local raw = redis.call('HGET', hash, id)
  local g = false
  if raw then
    g = cjson.decode(raw)
    if not live(g) then g = false end
  end
  if g and g.client ~= client then
    out[#out + 1] = 'taken'
  else
    local previous = ''
    if g then
      previous = g.cursor
    else
      g = { client = client, cursor = cursor, since = tostring(now), receipt = '0', node = '', stream = '' }
    end
    if kind == 'stream' then
      g.cursor = cursor
      g.stream = node
    elseif kind == 'receipt' then
      if tonumber(cursor) > tonumber(g.cursor) then g.cursor = cursor end
      g.receipt = tostring(now)
      g.node = node
    else
      g.stream = node
    end
    g.seen = tostring(now)
    redis.call('HSET', hash, id, cjson.encode(g))
    if g.cursor ~= previous then redis.call('PUBLISH', channel, g.cursor .. ' ' .. id) end
    out[#out + 1] = previous
  end
end
if ARGV[4] == '1' then
  local all = redis.call('HGETALL', hash)
  for i = 1, #all, 2 do
    if not live(cjson.decode(all[i + 1])) then redis.call('HDEL', hash, all[i]) end
  end
end
return out
`;

/** KEYS[1]: the hash. ARGV: guard id, node. Deletes the guard if its stream is on that node. */
const FORGET_SCRIPT = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and cjson.decode(raw).stream == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`;

/** KEYS[1]: the hash. ARGV: ttlMs. Returns `{ id, record, … }` of the guards seen within the TTL. */
const LIST_SCRIPT = `${PROLOGUE}
local all = redis.call('HGETALL', hash)
local out = {}
for i = 1, #all, 2 do
  if live(cjson.decode(all[i + 1])) then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
`;

const REPORT = 'revokdGuardsReport';
const FORGET = 'revokdGuardsForget';
const LIST = 'revokdGuardsList';

type ScriptCommand = (...args: Array<string | number>) => Promise<unknown>;
type Listener = (guardId: string, cursor: number) => void;

export interface RedisGuardStoreOptions {
  /** The node's Redis client (ioredis `Redis` or `Cluster`); the store defines three scripts on it, never quits it. */
  readonly client: Redis | Cluster;
  /** The feed's stream key, whose hash tag the registry's keys share. Default `{revokd}:log`. */
  readonly streamKey?: string;
}

/** {@link SharedGuardStore} on Redis (standalone or Cluster). */
export class RedisGuardStore implements SharedGuardStore {
  readonly #client: Redis | Cluster;
  /** The hash of guards, e.g. `{revokd}:log:guards`. */
  readonly key: string;
  /** The nudge channel, e.g. `{revokd}:log:guard-reports`. */
  readonly channel: string;
  readonly #report: ScriptCommand;
  readonly #forget: ScriptCommand;
  readonly #list: ScriptCommand;
  readonly #listeners = new Set<Listener>();
  /** A second connection, for pub/sub (a subscribed connection takes no other command); opened on first use. */
  #subscriber: Redis | Cluster | undefined;
  #subscribed = false;
  /** Subscribe and unsubscribe run one at a time, in order. */
  #sync: Promise<void> = Promise.resolve();

  constructor(options: RedisGuardStoreOptions) {
    this.#client = options.client;
    const streamKey = options.streamKey ?? REDIS_FEED_STREAM_KEY;
    this.key = redisCompanionKey(streamKey, 'guards');
    this.channel = redisCompanionKey(streamKey, 'guard-reports');
    this.#client.defineCommand(REPORT, { numberOfKeys: 1, lua: REPORT_SCRIPT });
    this.#client.defineCommand(FORGET, { numberOfKeys: 1, lua: FORGET_SCRIPT });
    this.#client.defineCommand(LIST, { numberOfKeys: 1, lua: LIST_SCRIPT });
    const commands = this.#client as unknown as Record<string, ScriptCommand>;
    this.#report = commands[REPORT]!.bind(this.#client);
    this.#forget = commands[FORGET]!.bind(this.#client);
    this.#list = commands[LIST]!.bind(this.#client);
  }

  async report(
    node: string,
    reports: readonly SharedReport[],
    options: { readonly ttlMs: number; readonly prune: boolean },
  ): Promise<SharedReportResult[]> {
    if (reports.length === 0 && !options.prune) return [];
    const args: string[] = [this.key, String(options.ttlMs), node, this.channel, options.prune ? '1' : '0'];
    for (const report of reports) {
      args.push(report.guardId, report.clientId, String(report.cursor), report.kind);
    }
    const reply = await this.#report(...args);
    if (!Array.isArray(reply) || reply.length !== reports.length + 1) {
      throw new Error('redis guard registry: unexpected report answer');
    }
    return reply.slice(1).map((result): SharedReportResult => {
      if (result === 'taken') return { taken: true };
      return { taken: false, previous: result === '' ? undefined : cursorOf(result) };
    });
  }

  async forget(guardId: string, node: string): Promise<void> {
    await this.#forget(this.key, guardId, node);
  }

  async list(ttlMs: number): Promise<SharedGuard[]> {
    const reply = await this.#list(this.key, String(ttlMs));
    if (!Array.isArray(reply)) throw new Error('redis guard registry: unexpected list answer');
    const guards: SharedGuard[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const guard = parseRecord(String(reply[i]), String(reply[i + 1]));
      if (guard !== undefined) guards.push(guard);
    }
    return guards;
  }

  async subscribe(listener: Listener): Promise<() => void> {
    this.#listeners.add(listener);
    try {
      await this.#resubscribe();
    } catch (error) {
      this.#listeners.delete(listener);
      throw error;
    }
    return () => {
      if (this.#listeners.delete(listener)) void this.#resubscribe().catch(() => {});
    };
  }

  /** Closes the pub/sub connection, if one was opened. */
  close(): void {
    this.#listeners.clear();
    this.#subscriber?.disconnect();
    this.#subscriber = undefined;
  }

  /** Subscribed exactly while someone listens. */
  #resubscribe(): Promise<void> {
    const next = this.#sync
      .catch(() => {})
      .then(async () => {
        const wanted = this.#listeners.size > 0;
        if (wanted === this.#subscribed) return;
        const subscriber = await this.#connectSubscriber();
        if (wanted) await subscriber.subscribe(this.channel);
        else await subscriber.unsubscribe(this.channel);
        this.#subscribed = wanted;
      });
    this.#sync = next;
    return next;
  }

  async #connectSubscriber(): Promise<Redis | Cluster> {
    let subscriber = this.#subscriber;
    if (subscriber === undefined) {
      const client = this.#client;
      subscriber = client instanceof Cluster ? client.duplicate() : client.duplicate();
      // Errors reach the caller through the commands; unhandled, ioredis would print every reconnect attempt.
      subscriber.on('error', () => {});
      subscriber.on('message', (channel: string, message: string) => {
        if (channel === this.channel) this.#deliver(message);
      });
      this.#subscriber = subscriber;
    }
    // Without an offline queue, a command sent before the connection is ready fails: wait for it.
    if (subscriber.status !== 'ready') {
      const ready = subscriber;
      await new Promise<void>((resolve, reject) => {
        const onReady = () => {
          ready.off('close', onClose);
          resolve();
        };
        const onClose = () => {
          ready.off('ready', onReady);
          reject(new Error('redis guard registry: the pub/sub connection closed'));
        };
        ready.once('ready', onReady);
        ready.once('close', onClose);
      });
    }
    return subscriber;
  }

  #deliver(message: string): void {
    const space = message.indexOf(' ');
    if (space <= 0) return;
    const cursor = cursorOf(message.slice(0, space));
    if (cursor === undefined) return;
    const guardId = message.slice(space + 1);
    for (const listener of this.#listeners) {
      try {
        listener(guardId, cursor);
      } catch {
        // One listener's failure is not the others'.
      }
    }
  }
}

function cursorOf(value: unknown): number | undefined {
  if (typeof value !== 'string' || !/^[0-9]{1,16}$/.test(value)) return undefined;
  const cursor = Number(value);
  return Number.isSafeInteger(cursor) ? cursor : undefined;
}

/** A record as the scripts write it; undefined when it is not one (written by hand, or by another version). */
function parseRecord(guardId: string, raw: string): SharedGuard | undefined {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const cursor = cursorOf(record.cursor);
  const since = cursorOf(record.since);
  const seen = cursorOf(record.seen);
  const receipt = cursorOf(record.receipt);
  if (
    typeof record.client !== 'string' ||
    cursor === undefined ||
    since === undefined ||
    seen === undefined
  ) {
    return undefined;
  }
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  return {
    guardId,
    clientId: record.client,
    cursor,
    connectedAtMs: since,
    lastSeenMs: seen,
    lastReceiptMs: receipt === undefined || receipt === 0 ? undefined : receipt,
    receiptNode: text(record.node),
    streamNode: text(record.stream),
  };
}
