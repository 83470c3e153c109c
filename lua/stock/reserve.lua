-- stock/reserve: the buy step for one or more reservations of one SKU, each applied atomically and in order.
-- KEYS: [1] stock hash, [2] holds zset (reservation ids by expiry), [3] events stream
-- ARGV: [1] sku, [2] events MAXLEN or '', then per reservation: reservationId, userId, quantity
-- Returns: a flat array, two numbers per reservation: code, remaining. Code 0 reserved, 1 replay of an
--          earlier success (remaining as it was then), 2 unknown SKU, 3 not started, 4 ended, 5 limit
--          reached, 6 sold out, 7 reservationId already used by another user or quantity (nothing written).
--          Then six numbers on the SKU as the call left it (what a process may answer later calls from):
--          reservation records ever made (`n`), available, perUserLimit, startsAt or -1, endsAt or -1, Redis
--          time (ms); all -1 for an unknown SKU.
-- Per reservation, in order: idempotency, sale window, per-user cap, stock check-and-decrement; only a
-- reservation that passes them all writes (its record, the user's units, its hold, a `reserved` event), so
-- a refusal writes nothing. Calls that arrive together share this script: one HMGET reads the counters,
-- settings and every user's units and record, one HSET writes them back, and reservations later in the
-- batch see the ones before them through the `users` and `recs` tables.
-- A key of another type: a WRONGTYPE error before anything is written.
-- @include stock/includes/common.lua
local wrong = wrongType()
if wrong then return wrong end

local sku, maxlen = ARGV[1], ARGV[2]
local n = (#ARGV - 2) / 3
local fields = { 'available', 'held', 'limit', 'hold', 'starts', 'ends', 'n' }
for i = 0, n - 1 do
  fields[#fields + 1] = 'u:' .. ARGV[4 + 3 * i]
  fields[#fields + 1] = 'r:' .. ARGV[3 + 3 * i]
end
local s = rcall('HMGET', KEYS[1], unpack(fields))
local out = {}
if not s[1] then
  for i = 1, n do
    out[2 * i - 1] = 2
    out[2 * i] = 0
  end
  for i = 1, 6 do out[2 * n + i] = -1 end
  return out
end

local available, held, limit, hold = tonumber(s[1]), tonumber(s[2]), tonumber(s[3]), tonumber(s[4])
local records = tonumber(s[7] or '0')
local now = nowMs()
local closed = 0
if s[5] and now < tonumber(s[5]) then closed = 3 elseif s[6] and now >= tonumber(s[6]) then closed = 4 end
-- Numbers become strings once per batch, not per reservation (number formatting is most of Lua's cost here).
local nowStr, expStr = tostring(now), '0'
if hold > 0 then expStr = tostring(now + hold) end

local users, recs, writes, holds = {}, {}, {}, {}
for i = 0, n - 1 do
  local rid, user, qtyStr = ARGV[3 + 3 * i], ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  local qty = tonumber(qtyStr)
  local ufield, rfield = fields[8 + 2 * i], fields[9 + 2 * i]
  local rec = recs[rfield] or s[9 + 2 * i]
  local code, remaining = 0, 0
  if rec then
    local _, rqty, _, rem, ruser = unpackRecord(rec)
    if ruser ~= user or rqty ~= qty then code = 7 else code, remaining = 1, rem end
  elseif closed ~= 0 then
    code = closed
  else
    local used = (users[ufield] or tonumber(s[8 + 2 * i] or '0')) + qty
    if used > limit then
      code = 5
    elseif available ~= -1 and available < qty then
      code, remaining = 6, available
    else
      if available ~= -1 then available = available - qty end
      held = held + qty
      records = records + 1
      if hold > 0 then
        holds[#holds + 1] = expStr
        holds[#holds + 1] = rid
      end
      rec = 'H|' .. qtyStr .. '|' .. expStr .. '|' .. available .. '|' .. user
      users[ufield] = used
      recs[rfield] = rec
      writes[#writes + 1] = ufield
      writes[#writes + 1] = used
      writes[#writes + 1] = rfield
      writes[#writes + 1] = rec
      appendEvent(maxlen, sku, 'reserved', rid, user, qtyStr, nowStr)
      remaining = available
    end
  end
  out[2 * i + 1] = code
  out[2 * i + 2] = remaining
end

if #writes > 0 then
  rcall('HSET', KEYS[1], 'available', available, 'held', held, 'n', records, unpack(writes))
  if #holds > 0 then rcall('ZADD', KEYS[2], unpack(holds)) end
end
out[2 * n + 1] = records
out[2 * n + 2] = available
out[2 * n + 3] = limit
out[2 * n + 4] = tonumber(s[5] or '-1')
out[2 * n + 5] = tonumber(s[6] or '-1')
out[2 * n + 6] = now
return out
