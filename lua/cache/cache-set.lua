-- cache/cache-set: store a loaded entry unless the id was invalidated after its load began.
-- KEYS: [1] entry key, [2] generation key
-- ARGV: [1] generation read before the load ('' when there was none), [2] encoded entry, [3] ttl ms
-- Returns: 1 stored; 0 invalidated meanwhile (nothing written).
local gen = redis.call('GET', KEYS[2]) or ''
if gen ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
