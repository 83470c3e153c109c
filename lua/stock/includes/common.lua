-- stock/includes/common: helpers pasted into the stock scripts (not a script of its own).
-- KEYS and ARGV: those of the including script; KEYS[1] stock hash, KEYS[2] holds zset, KEYS[3] events stream.
-- The stock hash holds the counters (initial, available, held, confirmed), the settings (limit, hold, starts,
-- ends), each user's units as `u:<userId>` and each reservation as `r:<reservationId>`, so the buy step reads
-- everything with one HMGET and writes with one HSET. A reservation record is packed as
-- "<state>|<quantity>|<expiresAtMs or 0>|<remaining>|<userId>"; state is H (held), C (confirmed) or
-- R (released); userId comes last because it may contain '|'. A field `sync` is written by stock/sync only.
local rcall = redis.call

-- Under `maxmemory` with `noeviction`, Redis refuses a script's first write when that command may grow
-- memory (HSET, XADD…), but lets a script that has already written go on (refusing it halfway would break
-- its atomicity). A step that must work while memory is full (giving stock back, confirming a paid
-- reservation) therefore opens with a write that cannot grow memory: HDEL of a field that never exists
-- (it changes nothing and is not replicated). Redis 7's `#!lua flags=allow-oom` would say the same, but a
-- shebang does not compile on Redis 6.2. Reserve does not do this: its first write (XADD) is refused with
-- OOM before anything is written.
local function writeEvenIfFull()
  rcall('HDEL', KEYS[1], '-')
end

local function nowMs()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function unpackRecord(rec)
  local state, qty, exp, remaining, user = string.match(rec, '^(%a)|(%d+)|(%-?%d+)|(%-?%d+)|(.*)$')
  return state, tonumber(qty), tonumber(exp), tonumber(remaining), user
end

local function packRecord(state, qty, exp, remaining, user)
  return state .. '|' .. qty .. '|' .. exp .. '|' .. remaining .. '|' .. user
end

local function appendEvent(maxlen, sku, kind, rid, user, qty, now)
  if maxlen == '' then
    rcall('XADD', KEYS[3], '*', 'type', kind, 'sku', sku, 'reservationId', rid, 'userId', user,
      'quantity', qty, 'at', now)
  else
    rcall('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'type', kind, 'sku', sku, 'reservationId', rid,
      'userId', user, 'quantity', qty, 'at', now)
  end
end

-- Returns a held reservation's units to stock and the user's quota, and records it as released.
-- When the SKU was sold out, tells every process (channel = ARGV restock channel) to drop its sold-out flag.
local function giveBack(rid, qty, exp, remaining, user, maxlen, sku, now, cause, channel)
  writeEvenIfFull()
  local ufield = 'u:' .. user
  local s = rcall('HMGET', KEYS[1], 'available', 'held', ufield)
  local available = tonumber(s[1])
  if available ~= -1 then available = available + qty end
  rcall('HSET', KEYS[1], 'r:' .. rid, packRecord('R', qty, exp, remaining, user), 'available', available,
    'held', tonumber(s[2]) - qty)
  local left = tonumber(s[3] or '0') - qty
  if left > 0 then rcall('HSET', KEYS[1], ufield, left) else rcall('HDEL', KEYS[1], ufield) end
  if exp > 0 then rcall('ZREM', KEYS[2], rid) end
  if available == qty then rcall('PUBLISH', channel, sku) end
  if maxlen == '' then
    rcall('XADD', KEYS[3], '*', 'type', 'released', 'sku', sku, 'reservationId', rid, 'userId', user,
      'quantity', qty, 'at', now, 'cause', cause)
  else
    rcall('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'type', 'released', 'sku', sku, 'reservationId', rid,
      'userId', user, 'quantity', qty, 'at', now, 'cause', cause)
  end
end

-- A WRONGTYPE error naming the key, before anything is written, when the holds or events key holds another
-- type (Redis does not roll a script back, so a failure after the first write would leave half a call).
-- The stock hash needs no check: every script reads it before its first write, and that read fails first.
local function wrongType()
  local want = { [2] = 'zset', [3] = 'stream' }
  for i = 2, 3 do
    local kind = rcall('TYPE', KEYS[i]).ok
    if kind ~= 'none' and kind ~= want[i] then
      return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a ' .. want[i])
    end
  end
  return false
end
