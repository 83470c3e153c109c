-- stock/set-stock: create a SKU or adjust a live one without losing its reservations.
-- KEYS: [1] stock hash, [2] the bucketed record of the same SKU ({<prefix>:<sku>}:buckets, same slot)
-- ARGV: [1] quantity (total units, -1 = unlimited), [2] perUserLimit, [3] startsAt ms or '', [4] endsAt ms
--       or '', [5] holdMs (0 = holds never expire), [6] restock pub/sub channel, [7] sku, [8] the caller's
--       origin (a process ignores the change message it caused itself)
-- Returns: {0, available, n} on success; {1, committed, n} when quantity is below the units already held plus
--          confirmed (nothing written); {2, count, 0} when the SKU is split into buckets (KEYS[2] exists:
--          nothing written, as stock/bucket-meta refuses a bucketed setStock of a one-bucket SKU). n: the
--          reservation records the SKU has ever made.
-- Every successful call publishes "<sku>\n<origin>" on the channel: the window, the stock or both changed, so
-- what other processes answer in process about this SKU must be dropped.
local rcall = redis.call
local quantity = tonumber(ARGV[1])
-- Checked here, in the same step as the write: two first setStock calls (one with buckets) cannot both win.
local buckets = rcall('HGET', KEYS[2], 'n')
if buckets then return { 2, tonumber(buckets), 0 } end
local s = rcall('HMGET', KEYS[1], 'held', 'confirmed', 'n')
local held = tonumber(s[1] or '0')
local confirmed = tonumber(s[2] or '0')
local records = tonumber(s[3] or '0')
if quantity ~= -1 and quantity < held + confirmed then
  return { 1, held + confirmed, records }
end
local available = -1
if quantity ~= -1 then available = quantity - held - confirmed end
rcall('HSET', KEYS[1], 'initial', quantity, 'available', available, 'held', held, 'confirmed', confirmed,
  'limit', ARGV[2], 'hold', ARGV[5], 'n', records)
if ARGV[3] == '' then rcall('HDEL', KEYS[1], 'starts') else rcall('HSET', KEYS[1], 'starts', ARGV[3]) end
if ARGV[4] == '' then rcall('HDEL', KEYS[1], 'ends') else rcall('HSET', KEYS[1], 'ends', ARGV[4]) end
rcall('PUBLISH', ARGV[6], ARGV[7] .. '\n' .. ARGV[8])
return { 0, available, records }
