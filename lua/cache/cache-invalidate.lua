-- cache/cache-invalidate: drop an id's entry (value or missing marker), or replace it with a fresh one, and
-- bump its generation, so a load already running cannot store what it read before the change.
-- KEYS: [1] entry key, [2] generation key
-- ARGV: [1] generation ttl ms (longer than any load), [2] the entry to store instead (optional), [3] its ttl ms
-- Returns: the new generation.
local gen = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return gen
