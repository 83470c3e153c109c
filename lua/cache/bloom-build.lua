-- cache/bloom-build: set bits in a rebuild's own (staging) segments and extend its lease and its keys' TTLs.
-- KEYS: [1] meta hash, [2] pending list (its TTL is renewed with the staging keys'), [3..] staging segments
-- ARGV: [1] build id, [2] bits per key, [3..] bit positions (none: only extend the lease)
-- Returns: 0 written; 1 this build was superseded or its lease ran out (nothing written).
-- @include cache/includes/bloom.lua
local now = nowMs()
if not building(KEYS[1], ARGV[1], now) then return 1 end
local lease = tonumber(rcall('HGET', KEYS[1], 'lease'))
setPositions(2, tonumber(ARGV[2]), 3)
rcall('HSET', KEYS[1], 'deadline', now + lease)
-- The staging keys of an abandoned build disappear on their own; the queue of positions added meanwhile lives
-- exactly as long (bloom-add sets its TTL when it first queues, but a build may run far longer than that
-- after the last add, and its commit must still find the queue).
for i = 2, #KEYS do rcall('PEXPIRE', KEYS[i], 2 * lease) end
return 0
