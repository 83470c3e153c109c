-- cache/bloom-commit: switch a finished rebuild in: replay the positions added meanwhile onto its staging
-- segments, rename them over the live ones in one step and bump the version.
-- KEYS: [1] meta hash, [2] pending list, [3..2+n] live segments, [3+n..2+2n] staging segments
-- ARGV: [1] build id, [2] bits per key, [3] segment count n
-- Returns: {0, version} switched; {1, 0} superseded or lease ran out (nothing written).
-- @include cache/includes/bloom.lua
if not building(KEYS[1], ARGV[1], nowMs()) then return { 1, 0 } end
local perKey, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local pending = rcall('LRANGE', KEYS[2], 0, -1)
for i = 1, #pending do
  local p = tonumber(pending[i])
  local seg = math.floor(p / perKey)
  rcall('SETBIT', KEYS[3 + n + seg], p - seg * perKey, 1)
end
for seg = 0, n - 1 do
  local live, staging = KEYS[3 + seg], KEYS[3 + n + seg]
  if rcall('EXISTS', staging) == 1 then
    rcall('RENAME', staging, live)
    rcall('PERSIST', live)
  else
    rcall('DEL', live)
  end
end
rcall('DEL', KEYS[2])
rcall('HDEL', KEYS[1], 'building', 'deadline', 'lease')
stampEpoch(KEYS[1])
return { 0, rcall('HINCRBY', KEYS[1], 'version', 1) }
