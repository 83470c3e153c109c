-- cache/cache-invalidate: drop an id's entry (value or missing marker), or replace it with a fresh one, and
-- bump its generation, so a load already running cannot store what it read before the change; tell every L1.
-- KEYS: [1] entry key, [2] generation key
-- ARGV: [1] generation ttl ms (longer than any load), [2] the entry to store instead ('' or absent: none),
--       [3] its ttl ms, [4] ms until it turns stale ('' or absent: no stamp, as in cache-set),
--       [5] pub/sub channel ('' or absent: no message), [6] the message (the id)
-- Returns: the new generation.
-- @include cache/includes/entry.lua
local gen = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local entry = ARGV[2]
if entry and entry ~= '' then
  if ARGV[4] and ARGV[4] ~= '' then entry = stamp(entry, ARGV[4]) end
  redis.call('SET', KEYS[1], entry, 'PX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
if ARGV[5] and ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return gen
