-- cache/cache-invalidate: drop an id's entry (value or missing marker) and bump its generation, so a load
-- already running cannot store what it read before the change.
-- KEYS: [1] entry key, [2] generation key
-- ARGV: [1] generation ttl ms (longer than any load)
-- Returns: the new generation.
local gen = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return gen
