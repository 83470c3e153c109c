-- stock/bucket-adjust: create one bucket of a bucketed SKU, or change its units and settings, once per
-- operation id (a retry of the same operation returns what the first call did).
-- KEYS: [1] the bucket's stock hash
-- ARGV: [1] operation id, [2] bucket count, [3] units to add (negative: remove up to that many of the
--       available ones), [4] perUserLimit, [5] startsAt ms or '', [6] endsAt ms or '', [7] holdMs (0 = never),
--       [8] restock pub/sub channel, [9] sku, [10] the caller's origin, [11] '1': units only, the settings
--       ([4] to [7]) left as they are (a decrease that may yet be put back), else '' or absent
-- Returns: {units added (negative: removed), available after}.
-- A bucket's hash has the fields of a one-bucket SKU's stock hash (so stock/reserve, confirm, release,
-- expire-holds and state run on it unchanged) plus: of (the bucket count), v (bumped by every transfer in or
-- out), a:<opId> (units an operation added) and x:<transferId> (transfers, see bucket-take).
local rcall = redis.call
local afield = 'a:' .. ARGV[1]
local s = rcall('HMGET', KEYS[1], afield, 'available', 'held', 'confirmed', 'n', 'v')
local available = tonumber(s[2] or '0')
if s[1] then return { tonumber(s[1]), available } end
local add = tonumber(ARGV[3])
if add < 0 and -add > available then add = -available end
local before = available
available = available + add
rcall('HSET', KEYS[1], afield, add, 'available', available, 'held', s[3] or 0, 'confirmed', s[4] or 0,
  'n', s[5] or 0, 'v', s[6] or 0, 'of', ARGV[2])
if ARGV[11] ~= '1' then
  rcall('HSET', KEYS[1], 'limit', ARGV[4], 'hold', ARGV[7])
  if ARGV[5] == '' then rcall('HDEL', KEYS[1], 'starts') else rcall('HSET', KEYS[1], 'starts', ARGV[5]) end
  if ARGV[6] == '' then rcall('HDEL', KEYS[1], 'ends') else rcall('HSET', KEYS[1], 'ends', ARGV[6]) end
end
-- The window or the units changed: what any process answers in process about this SKU must be dropped.
rcall('PUBLISH', ARGV[8], ARGV[9] .. '\n' .. ARGV[10])
return { add, available }
