-- stock/bucket-credit: the second step of a transfer: the receiving bucket gets the units, once.
-- KEYS: [1] the receiving bucket's stock hash
-- ARGV: [1] transfer id, [2] units, [3] the donor bucket's index
-- Returns: 1 credited now, 0 credited before (nothing written).
-- Any process may run it for a transfer it finds unfinished in a donor's moves hash; the donor's entry is
-- deleted afterwards (HDEL), so a transfer interrupted between the steps is completed by the next reader.
local rcall = redis.call
local xfield = 'x:' .. ARGV[1]
local s = rcall('HMGET', KEYS[1], xfield, 'available', 'v')
if s[1] then return 0 end
rcall('HSET', KEYS[1], 'available', tonumber(s[2] or '0') + tonumber(ARGV[2]), 'v', tonumber(s[3] or '0') + 1,
  xfield, ARGV[2] .. '|' .. ARGV[3])
return 1
