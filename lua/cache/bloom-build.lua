-- cache/bloom-build: set bits in a rebuild's own (staging) segments and extend its lease.
-- KEYS: [1] meta hash, [2..] the build's staging segments
-- ARGV: [1] build id, [2] bits per key, [3..] bit positions (none: only extend the lease)
-- Returns: 0 written; 1 this build was superseded or its lease ran out (nothing written).
-- @include cache/includes/bloom.lua
local now = nowMs()
if not building(KEYS[1], ARGV[1], now) then return 1 end
local lease = tonumber(rcall('HGET', KEYS[1], 'lease'))
setPositions(1, tonumber(ARGV[2]), 3)
rcall('HSET', KEYS[1], 'deadline', now + lease)
-- Staging keys of an abandoned build disappear on their own.
for i = 2, #KEYS do rcall('PEXPIRE', KEYS[i], 2 * lease) end
return 0
