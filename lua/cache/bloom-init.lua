-- cache/bloom-init: record a filter's shape on first use, or check that it matches the stored one.
-- KEYS: [1] meta hash
-- ARGV: [1] shape "m:k:perKey:scheme"
-- Returns: {0, version, adds} the shape matches (or was just recorded);
--          {1, storedShape} another shape is stored under this name (nothing written).
-- @include cache/includes/bloom.lua
local conflict = shapeConflict(KEYS[1], ARGV[1])
if conflict then return { 1, conflict } end
rcall('HSETNX', KEYS[1], 'shape', ARGV[1])
stampEpoch(KEYS[1])
local v = rcall('HMGET', KEYS[1], 'version', 'adds')
return { 0, tonumber(v[1] or '0'), tonumber(v[2] or '0') }
