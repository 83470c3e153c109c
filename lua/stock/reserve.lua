-- stock/reserve: the whole buy step in one atomic call.
-- KEYS: [1] stock hash, [2] holds zset (reservation ids by expiry), [3] events stream
-- ARGV: [1] reservationId, [2] userId, [3] quantity, [4] sku, [5] events MAXLEN or ''
-- Returns: {code, remaining}; code 0 reserved, 1 replay of an earlier success (remaining as it was then),
--          2 unknown SKU, 3 not started, 4 ended, 5 limit reached, 6 sold out,
--          7 reservationId already used by another user or quantity (nothing written).
-- Order: idempotency, sale window, per-user cap, stock check-and-decrement, then the writes (counters, the
-- user's units, the reservation record, the hold index, a `reserved` event). Every check precedes the first
-- write; one HMGET reads all it needs and one HSET writes the counters, the user's units and the record.
-- @include stock/includes/common.lua

local rid, user, qty = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ufield, rfield = 'u:' .. user, 'r:' .. rid
local s = rcall('HMGET', KEYS[1], 'available', 'held', 'limit', 'hold', 'starts', 'ends', ufield, rfield)
if not s[1] then return { 2, 0 } end

if s[8] then
  local _, rqty, _, remaining, ruser = unpackRecord(s[8])
  if ruser ~= user or rqty ~= qty then return { 7, 0 } end
  return { 1, remaining }
end

local now = nowMs()
if s[5] and now < tonumber(s[5]) then return { 3, 0 } end
if s[6] and now >= tonumber(s[6]) then return { 4, 0 } end

local used = tonumber(s[7] or '0') + qty
if used > tonumber(s[3]) then return { 5, 0 } end

local available = tonumber(s[1])
if available ~= -1 then
  if available < qty then return { 6, available } end
  available = available - qty
end

local hold = tonumber(s[4])
local exp = 0
if hold > 0 then
  exp = now + hold
  rcall('ZADD', KEYS[2], exp, rid)
end
rcall('HSET', KEYS[1], 'available', available, 'held', tonumber(s[2]) + qty, ufield, used,
  rfield, packRecord('H', qty, exp, available, user))
appendEvent(ARGV[5], ARGV[4], 'reserved', rid, user, qty, now)
return { 0, available }
