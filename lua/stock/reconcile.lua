-- stock/reconcile: write back reservations that the database of record (the orders) knows and that the SKU's
-- Redis state lost (a failover that dropped acknowledged writes, an older snapshot restored).
-- KEYS: [1] stock hash, [2] holds zset (reservation ids by expiry), [3] events stream
-- ARGV: per reservation: reservationId, userId, quantity, state ('H' held for a pending order, 'C' confirmed
--       for a paid one)
-- Returns: one code per reservation, in order: 0 restored, 1 a record exists already (nothing written),
--          2 not restored: fewer units available than its quantity, 3 not restored: the user's units would pass
--          the per-user limit; all -1 for an unknown SKU (nothing written).
-- A restored reservation counts exactly as if it had never been lost: its units leave `available` for `held`
-- (a fresh hold: it expires `hold` ms from now) or `confirmed`, the user's units grow, and the record count
-- `n` with them; so available + held + confirmed = initial still holds, and nothing is restored past the
-- stock or the limit. No event is appended: the order it comes from exists already.
-- A key of another type: a WRONGTYPE error before anything is written.
-- @include stock/includes/common.lua
local wrong = wrongType()
if wrong then return wrong end

local n = #ARGV / 4
local out = {}
local s = rcall('HMGET', KEYS[1], 'available', 'held', 'confirmed', 'limit', 'hold', 'n')
if not s[1] then
  for i = 1, n do out[i] = -1 end
  return out
end
local available, held, confirmed = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
local limit, hold, records = tonumber(s[4]), tonumber(s[5] or '0'), tonumber(s[6] or '0')
local exp = 0
if hold > 0 then exp = nowMs() + hold end

local users = {}
local restored = false
for i = 0, n - 1 do
  local rid, user, qtyStr, state = ARGV[1 + 4 * i], ARGV[2 + 4 * i], ARGV[3 + 4 * i], ARGV[4 + 4 * i]
  local qty = tonumber(qtyStr)
  local rfield, ufield = 'r:' .. rid, 'u:' .. user
  local code = 0
  if rcall('HEXISTS', KEYS[1], rfield) == 1 then
    code = 1
  else
    local used = users[ufield] or tonumber(rcall('HGET', KEYS[1], ufield) or '0')
    if used + qty > limit then
      code = 3
    elseif available ~= -1 and available < qty then
      code = 2
    else
      if available ~= -1 then available = available - qty end
      restored = true
      records = records + 1
      users[ufield] = used + qty
      local e = 0
      if state == 'H' then
        held = held + qty
        e = exp
      else
        confirmed = confirmed + qty
      end
      rcall('HSET', KEYS[1], rfield, packRecord(state, qtyStr, e, available, user), ufield, used + qty)
      if e > 0 then rcall('ZADD', KEYS[2], e, rid) end
    end
  end
  out[i + 1] = code
end
if restored then
  rcall('HSET', KEYS[1], 'available', available, 'held', held, 'confirmed', confirmed, 'n', records)
end
return out
