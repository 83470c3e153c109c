-- stock/bucket-take: the first step of moving units from a bucket with stock to a drained one.
-- KEYS: [1] the donor bucket's stock hash, [2] the donor bucket's moves hash (transfers not yet finished)
-- ARGV: [1] transfer id, [2] the receiving bucket's index, [3] units needed
-- Returns: the units taken (0: none available); a repeat of a transfer id returns what its first call took.
-- Takes max(needed, half the available, rounded up), at most what is available, so a few transfers drain a
-- bucket instead of one per unit. Records the transfer on this side (x:<id> in the stock hash, for good, and
-- <id> -> "<to>|<units>" in the moves hash until the receiver has it, see bucket-credit); bumps v so that a
-- reader comparing two reads of every bucket sees that units moved.
local rcall = redis.call
local xfield = 'x:' .. ARGV[1]
local s = rcall('HMGET', KEYS[1], xfield, 'available', 'v')
if s[1] then return -tonumber(string.match(s[1], '^(%-?%d+)')) end
if not s[2] then return 0 end
local available = tonumber(s[2])
if available <= 0 then return 0 end
local need = tonumber(ARGV[3])
local k = math.ceil(available / 2)
if need > k then k = need end
if k > available then k = available end
rcall('HSET', KEYS[1], 'available', available - k, 'v', tonumber(s[3] or '0') + 1, xfield,
  -k .. '|' .. ARGV[2])
rcall('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. k)
return k
