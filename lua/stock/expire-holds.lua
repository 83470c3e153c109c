-- stock/expire-holds: release holds whose expiry (Redis time) has passed, oldest first, at most ARGV[1].
-- KEYS: [1] meta hash, [2] per-user quantities hash, [3] reservations hash, [4] holds zset, [5] events stream
-- ARGV: [1] limit, [2] sku, [3] events MAXLEN or ''
-- Returns: the number of holds released.
-- @include stock/includes/common.lua

local now = nowMs()
local due = rcall('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local released = 0
for i = 1, #due do
  local rid = due[i]
  local rec = rcall('HGET', KEYS[3], rid)
  if rec then
    local state, qty, exp, remaining, user = unpackRecord(rec)
    if state == 'H' then
      giveBack(rid, qty, exp, remaining, user, ARGV[3], ARGV[2], now, 'expired')
      released = released + 1
    else
      rcall('ZREM', KEYS[4], rid)
    end
  else
    rcall('ZREM', KEYS[4], rid)
  end
end
return released
