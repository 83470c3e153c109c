-- stock/confirm: turn a held reservation into a sale. Idempotent; a hold past its expiry is released instead.
-- KEYS: [1] meta hash, [2] per-user quantities hash, [3] reservations hash, [4] holds zset, [5] events stream
-- ARGV: [1] reservationId, [2] sku, [3] events MAXLEN or ''
-- Returns: 0 confirmed (now or before), 1 released (before, or now because the hold expired),
--          2 unknown reservation.
-- @include stock/includes/common.lua

local rid = ARGV[1]
local rec = rcall('HGET', KEYS[3], rid)
if not rec then return 2 end
local state, qty, exp, remaining, user = unpackRecord(rec)
if state == 'C' then return 0 end
if state == 'R' then return 1 end

local now = nowMs()
if exp > 0 and now >= exp then
  giveBack(rid, qty, exp, remaining, user, ARGV[3], ARGV[2], now, 'expired')
  return 1
end
rcall('HSET', KEYS[3], rid, packRecord('C', qty, exp, remaining, user))
rcall('HINCRBY', KEYS[1], 'held', -qty)
rcall('HINCRBY', KEYS[1], 'confirmed', qty)
rcall('ZREM', KEYS[4], rid)
appendEvent(ARGV[3], ARGV[2], 'confirmed', rid, user, qty, now, false)
return 0
