-- cache/bloom-begin: start a rebuild: from now on adds are also queued for it. A rebuild already running
-- is superseded (its commit will be refused); the queue is kept, so positions added since it began survive.
-- KEYS: [1] meta hash, [2] pending list
-- ARGV: [1] shape "m:k:perKey:scheme", [2] build id, [3] lease ms
-- Returns: {0, version} started; {1, storedShape} another shape is stored under this name (nothing written).
-- @include cache/includes/bloom.lua
local conflict = shapeConflict(KEYS[1], ARGV[1])
if conflict then return { 1, conflict } end
local now = nowMs()
if not building(KEYS[1], nil, now) then rcall('DEL', KEYS[2]) end
local lease = tonumber(ARGV[3])
rcall('HSET', KEYS[1], 'shape', ARGV[1], 'building', ARGV[2], 'deadline', now + lease, 'lease', lease)
stampEpoch(KEYS[1])
return { 0, tonumber(rcall('HGET', KEYS[1], 'version') or '0') }
