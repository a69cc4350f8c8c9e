/**
 * The relay's two Lua scripts. Each runs atomically in Redis, so any number of server nodes may publish the same
 * entries concurrently: the stream holds the log once, in cursor order. The record format (ids, fields, `prev`)
 * is the guard's: `@revokd/guard/redis` (`redis-wire.ts`) documents it.
 *
 * Cursors cross into Lua as decimal strings and are written back as those strings: Lua numbers are doubles, and
 * `tostring` prints large ones in exponent form, so they are used for comparisons only (exact up to 2^53).
 */
import { REDIS_FEED_FIELDS } from '@revokd/guard/redis';

const { event: EVENT, data: DATA, prev: PREV } = REDIS_FEED_FIELDS;

/** Shared prologue: Redis's clock in ms, and the stream's last record (id, cursor part, sequence part). */
const PROLOGUE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stream = KEYS[1]
local tail = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
local tailId, head, seq = false, false, false
if #tail > 0 then
  tailId = tail[1][1]
  head, seq = string.match(tailId, '^(%d+)%-(%d+)$')
end
-- A stream emptied by hand keeps its last id, which would refuse ours: start it again.
local function restart()
  if redis.call('EXISTS', stream) == 1 then redis.call('DEL', stream) end
end
`;

/**
 * Publishes entries. KEYS[1]: the stream. ARGV[1]: `after`, the batch's claim that it holds every log entry in
 * `(after, last]`; ARGV[2]: maxLength; ARGV[3..]: cursor, entry JSON pairs in ascending cursor order.
 * Returns `{ status, head, redisNowMs, added }`:
 * - `added`: the `added` entries beyond the stream's head were added as one record (`head` is the new head);
 * - `dup`: the stream already reaches the batch's last cursor (another node published it);
 * - `gap`: the stream stops at `head`, short of `after`: publish the log in between first. A gap wider than
 *   maxLength is not filled: the record is added with `prev = after`, and consumers before it reload a snapshot.
 * An empty stream (Redis restarted without persistence) accepts any batch, with `prev = after`.
 */
export const PUBLISH_SCRIPT = `${PROLOGUE}
local after = ARGV[1]
local maxlen = ARGV[2]
local last = ARGV[#ARGV - 1]
local prev = after
if head then
  if tonumber(last) <= tonumber(head) then return {'dup', head, now} end
  if tonumber(head) < tonumber(after) then
    if tonumber(after) - tonumber(head) <= tonumber(maxlen) then return {'gap', head, now} end
  else
    prev = head
  end
else
  restart()
end
local parts = {}
for i = 3, #ARGV - 1, 2 do
  if not head or tonumber(ARGV[i]) > tonumber(head) then parts[#parts + 1] = ARGV[i + 1] end
end
redis.call('XADD', stream, 'MAXLEN', '~', maxlen, last .. '-0',
  '${EVENT}', 'entries', '${DATA}', '{"entries":[' .. table.concat(parts, ',') .. ']}', '${PREV}', prev)
return {'added', last, now, #parts}
`;

/**
 * Writes a heartbeat. KEYS[1]: the stream; KEYS[2]: when the last heartbeat was written (Redis ms). ARGV[1]: the
 * node's applied cursor; ARGV[2]: the node's clock (`serverTimeMs`, JSON number); ARGV[3]: heartbeatMs;
 * ARGV[4]: maxLength; ARGV[5]: deadline in Redis ms (`0`: only read the clock); ARGV[6]: `1` to start an empty
 * stream with this heartbeat. Returns `{ status, head, redisNowMs }`:
 * - `sync`: nothing written (no deadline given); `expired`: the command ran after its deadline (it sat in a
 *   client queue), nothing written: a late heartbeat would vouch for an old state as if it were new;
 * - `empty`: the stream is empty; `behind`: the node has applied entries beyond the head: publish them first;
 * - `recent`: another node wrote a heartbeat less than heartbeatMs / 2 ago;
 * - `beat`: a heartbeat at the head was added. A heartbeat that is still the last record is replaced (nothing
 *   came after it, so a consumer that missed it loses nothing); one followed by entries stays, so a consumer
 *   reading the records in order always finds the heartbeats written while it was following.
 */
export const HEARTBEAT_SCRIPT = `${PROLOGUE}
local cursor = ARGV[1]
local deadline = tonumber(ARGV[5])
if deadline == 0 then return {'sync', head, now} end
if now > deadline then return {'expired', head, now} end
local maxlen = ARGV[4]
local id = false
if not head then
  if ARGV[6] ~= '1' then return {'empty', false, now} end
  restart()
  head = cursor
  id = cursor .. '-1'
else
  if tonumber(cursor) > tonumber(head) then return {'behind', head, now} end
  local beat = redis.call('GET', KEYS[2])
  if beat and now - tonumber(beat) < tonumber(ARGV[3]) / 2 then return {'recent', head, now} end
  if seq ~= '0' then redis.call('XDEL', stream, tailId) end
  id = head .. '-*'
end
redis.call('XADD', stream, 'MAXLEN', '~', maxlen, id,
  '${EVENT}', 'heartbeat', '${DATA}', '{"cursor":' .. head .. ',"serverTimeMs":' .. ARGV[2] .. '}')
redis.call('SET', KEYS[2], now, 'PX', math.max(60000, tonumber(ARGV[3]) * 10))
return {'beat', head, now}
`;
