-- cache/cache-set: store a loaded entry unless the id was invalidated after its load began; with a stale
-- time, stamp the entry with the Redis time at which it turns stale; tell every L1 the id changed.
-- KEYS: [1] entry key, [2] generation key
-- ARGV: [1] generation read before the load ('' when there was none), [2] encoded entry, [3] ttl ms,
--       [4] ms until the entry turns stale ('' or absent: no stamp), [5] pub/sub channel ('' or absent: no
--       message), [6] the message (the id)
-- Returns: 1 stored (the entry is "s<stale at, Redis ms>|<encoded entry>" when stamped); 0 invalidated
--          meanwhile (nothing written, nothing published).
-- @include cache/includes/entry.lua
local gen = redis.call('GET', KEYS[2]) or ''
if gen ~= ARGV[1] then return 0 end
local entry = ARGV[2]
if ARGV[4] and ARGV[4] ~= '' then entry = stamp(entry, ARGV[4]) end
redis.call('SET', KEYS[1], entry, 'PX', ARGV[3])
if ARGV[5] and ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
