-- stock/reserve: the whole buy step in one call: idempotency, sale window, per-user cap, stock
-- check-and-decrement, the reservation record and a `reserved` event. Every check precedes the first write.
-- KEYS: [1] meta hash, [2] per-user quantities hash, [3] reservations hash, [4] holds zset, [5] events stream
-- ARGV: [1] reservationId, [2] userId, [3] quantity, [4] sku, [5] events MAXLEN or ''
-- Returns: {code, remaining}; code 0 reserved, 1 replay of an earlier success (remaining as it was then),
--          2 unknown SKU, 3 not started, 4 ended, 5 limit reached, 6 sold out,
--          7 reservationId already used by another user or quantity (nothing written).
-- @include stock/includes/common.lua

local rid, user, qty = ARGV[1], ARGV[2], tonumber(ARGV[3])
local meta = rcall('HMGET', KEYS[1], 'available', 'limit', 'starts', 'ends', 'hold')
if not meta[1] then return { 2, 0 } end

local rec = rcall('HGET', KEYS[3], rid)
if rec then
  local _, rqty, _, remaining, ruser = unpackRecord(rec)
  if ruser ~= user or rqty ~= qty then return { 7, 0 } end
  return { 1, remaining }
end

local now = nowMs()
if meta[3] and now < tonumber(meta[3]) then return { 3, 0 } end
if meta[4] and now >= tonumber(meta[4]) then return { 4, 0 } end

local used = tonumber(rcall('HGET', KEYS[2], user) or '0')
if used + qty > tonumber(meta[2]) then return { 5, 0 } end

local available = tonumber(meta[1])
if available ~= -1 then
  if available < qty then return { 6, available } end
  available = available - qty
  rcall('HSET', KEYS[1], 'available', available)
end
rcall('HINCRBY', KEYS[1], 'held', qty)
rcall('HINCRBY', KEYS[2], user, qty)

local hold = tonumber(meta[5])
local exp = 0
if hold > 0 then
  exp = now + hold
  rcall('ZADD', KEYS[4], exp, rid)
end
rcall('HSET', KEYS[3], rid, packRecord('H', qty, exp, available, user))
appendEvent(ARGV[5], ARGV[4], 'reserved', rid, user, qty, now, false)
return { 0, available }
