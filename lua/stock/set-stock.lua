-- stock/set-stock: create a SKU or adjust a live one without losing its reservations.
-- KEYS: [1] stock hash
-- ARGV: [1] quantity (total units, -1 = unlimited), [2] perUserLimit, [3] startsAt ms or '', [4] endsAt ms
--       or '', [5] holdMs (0 = holds never expire), [6] restock pub/sub channel, [7] sku
-- Returns: {0, available} on success; {1, committed} when quantity is below the units already held plus
--          confirmed (nothing written).
local rcall = redis.call
local quantity = tonumber(ARGV[1])
local s = rcall('HMGET', KEYS[1], 'held', 'confirmed')
local held = tonumber(s[1] or '0')
local confirmed = tonumber(s[2] or '0')
if quantity ~= -1 and quantity < held + confirmed then
  return { 1, held + confirmed }
end
local available = -1
if quantity ~= -1 then available = quantity - held - confirmed end
rcall('HSET', KEYS[1], 'initial', quantity, 'available', available, 'held', held, 'confirmed', confirmed,
  'limit', ARGV[2], 'hold', ARGV[5])
if ARGV[3] == '' then rcall('HDEL', KEYS[1], 'starts') else rcall('HSET', KEYS[1], 'starts', ARGV[3]) end
if ARGV[4] == '' then rcall('HDEL', KEYS[1], 'ends') else rcall('HSET', KEYS[1], 'ends', ARGV[4]) end
if available ~= 0 then rcall('PUBLISH', ARGV[6], ARGV[7]) end
return { 0, available }
