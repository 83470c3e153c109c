-- lock/extend: compare-and-pexpire; sets the owner's lock to expire ttlMs from now.
-- KEYS: [1] lock (string: the owner's token)
-- ARGV: [1] token, [2] ttlMs
-- Returns: 1 extended, 0 not the owner (expired, taken over, or released; nothing written).
-- A key of another type (overwritten by hand) counts as another owner's: pcall turns WRONGTYPE into a mismatch.
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
