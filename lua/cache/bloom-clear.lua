-- cache/bloom-clear: remove every item (the shape is kept), end a running rebuild (its switch would bring
-- back what was cleared; it is told SUPERSEDED) and bump the version so mirrors reload.
-- KEYS: [1] meta hash, [2] pending list, [3..] bitmap segments
-- ARGV: [1] shape "m:k:perKey:scheme"
-- Returns: {0, version} cleared; {1, storedShape} another shape is stored under this name (nothing written).
-- @include cache/includes/bloom.lua
local conflict = shapeConflict(KEYS[1], ARGV[1])
if conflict then return { 1, conflict } end
for i = 2, #KEYS do rcall('DEL', KEYS[i]) end
rcall('HDEL', KEYS[1], 'building', 'deadline', 'lease')
stampEpoch(KEYS[1])
return { 0, rcall('HINCRBY', KEYS[1], 'version', 1) }
