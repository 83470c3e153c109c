-- cache/bloom-clear: remove every item (the shape is kept) and bump the version so mirrors reload.
-- KEYS: [1] meta hash, [2..] bitmap segments
-- ARGV: none
-- Returns: the new version.
local rcall = redis.call
for i = 2, #KEYS do rcall('DEL', KEYS[i]) end
return rcall('HINCRBY', KEYS[1], 'version', 1)
