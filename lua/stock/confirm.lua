-- stock/confirm: turn a held reservation into a sale. Idempotent; a hold past its expiry is released instead.
-- KEYS: [1] stock hash, [2] holds zset (reservation ids by expiry), [3] events stream
-- ARGV: [1] reservationId, [2] sku, [3] events MAXLEN or '', [4] restock pub/sub channel
-- Returns: 0 confirmed (now or before), 1 released (before, or now because the hold expired),
--          2 unknown reservation.
-- A key of another type: a WRONGTYPE error before anything is written. Runs while memory is full (OOM).
-- @include stock/includes/common.lua
local wrong = wrongType()
if wrong then return wrong end

local rid = ARGV[1]
local rfield = 'r:' .. rid
local s = rcall('HMGET', KEYS[1], rfield, 'held', 'confirmed')
if not s[1] then return 2 end
local state, qty, exp, remaining, user = unpackRecord(s[1])
if state == 'C' then return 0 end
if state == 'R' then return 1 end

local now = nowMs()
if exp > 0 and now >= exp then
  giveBack(rid, qty, exp, remaining, user, ARGV[3], ARGV[2], now, 'expired', ARGV[4])
  return 1
end
writeEvenIfFull()
rcall('HSET', KEYS[1], rfield, packRecord('C', qty, exp, remaining, user), 'held', tonumber(s[2]) - qty,
  'confirmed', tonumber(s[3]) + qty)
if exp > 0 then rcall('ZREM', KEYS[2], rid) end
appendEvent(ARGV[3], ARGV[2], 'confirmed', rid, user, qty, now)
return 0
