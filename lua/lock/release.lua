-- lock/release: compare-and-delete; wakes waiters (PUBLISH) when one has registered through the flag.
-- KEYS: [1] lock (string: the owner's token), [2] waiters flag
-- ARGV: [1] token, [2] release channel
-- Returns: 1 released, 0 not the owner (expired, taken over, or never held; nothing written).
-- A key of another type (overwritten by hand) counts as another owner's: pcall turns WRONGTYPE into a mismatch.
local rcall = redis.call
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then return 0 end
rcall('DEL', KEYS[1])
if rcall('EXISTS', KEYS[2]) == 1 then rcall('PUBLISH', ARGV[2], '1') end
return 1
