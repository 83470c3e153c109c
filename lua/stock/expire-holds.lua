-- stock/expire-holds: release holds whose expiry (Redis time) has passed, oldest first, at most ARGV[1].
-- KEYS: [1] stock hash, [2] holds zset (reservation ids by expiry), [3] events stream
-- ARGV: [1] limit, [2] sku, [3] events MAXLEN or '', [4] restock pub/sub channel
-- Returns: the number of holds released.
-- A key of another type: a WRONGTYPE error before anything is written. Runs while memory is full (OOM).
-- @include stock/includes/common.lua
local wrong = wrongType()
if wrong then return wrong end

local now = nowMs()
local due = rcall('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local released = 0
for i = 1, #due do
  local rid = due[i]
  local rec = rcall('HGET', KEYS[1], 'r:' .. rid)
  local state, qty, exp, remaining, user
  if rec then state, qty, exp, remaining, user = unpackRecord(rec) end
  if state == 'H' then
    giveBack(rid, qty, exp, remaining, user, ARGV[3], ARGV[2], now, 'expired', ARGV[4])
    released = released + 1
  else
    rcall('ZREM', KEYS[2], rid)
  end
end
return released
