-- queue/redeem-pass: spend a waiting-room pass once, before it expires by Redis TIME; spending it frees the
-- user's place among the active passes.
-- KEYS: [1] admitted (zset: user -> pass expiresAt ms), [2] admission numbers (hash: user -> n)
-- ARGV: [1] user id, [2] the pass's admission number, [3] the pass's expiresAt (epoch ms)
-- Returns: 0 spent now, 1 expired, 2 not the user's current admission (spent already, or the room was
--          cleared). Only 0 writes.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiresAt = tonumber(ARGV[3])
if now >= expiresAt then return 1 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 2 end
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) ~= expiresAt then return 2 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 0
