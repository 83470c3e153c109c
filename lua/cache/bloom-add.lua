-- cache/bloom-add: set the k bits of one or more items; while a rebuild runs, also queue the positions so
-- its commit keeps them.
-- KEYS: [1] meta hash, [2] pending list (positions added during a rebuild), [3..] bitmap segments
-- ARGV: [1] shape "m:k:perKey:scheme", [2] bits per key, [3..] bit positions
-- Returns: {0, changed, adds} set (changed = bits that were clear; adds = the add counter, bumped only when
--          changed > 0); {1, storedShape} another shape is stored under this name (nothing written).
-- @include cache/includes/bloom.lua
local conflict = shapeConflict(KEYS[1], ARGV[1])
if conflict then return { 1, conflict } end
rcall('HSETNX', KEYS[1], 'shape', ARGV[1])
stampEpoch(KEYS[1])
local changed = setPositions(2, tonumber(ARGV[2]), 3)
if building(KEYS[1], nil, nowMs()) then
  -- Positions, not items: the commit replays them onto the new version's bitmap.
  for i = 3, #ARGV, 1000 do
    rcall('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  rcall('PEXPIRE', KEYS[2], 2 * tonumber(rcall('HGET', KEYS[1], 'lease')))
end
local adds
if changed > 0 then
  adds = rcall('HINCRBY', KEYS[1], 'adds', 1)
else
  adds = tonumber(rcall('HGET', KEYS[1], 'adds') or '0')
end
return { 0, changed, adds }
