-- cache/includes/bloom: helpers pasted into the Bloom filter scripts (not a script of its own).
-- KEYS and ARGV: those of the including script. Bit positions are global in [0, m); position p lives in
-- segment floor(p / perKey) at offset p mod perKey. The meta hash holds `shape` ("m:k:perKey:scheme"),
-- `version` (bumped by commit and clear), `adds` (bumped when an add changed a bit), `epoch` (when the hash
-- was created), and while a rebuild
-- runs `building` (its id), `deadline` (Redis ms) and `lease` (ms).
local rcall = redis.call

local function nowMs()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Marks the meta hash with the moment it was created (Redis TIME, µs), unless it has one: a filter whose keys
-- were deleted and built again up to the same version and add counts still differs, so mirrors reload.
local function stampEpoch(meta)
  if rcall('HEXISTS', meta, 'epoch') == 0 then
    local t = rcall('TIME')
    rcall('HSET', meta, 'epoch', t[1] .. string.format('%06d', tonumber(t[2])))
  end
end

-- The stored shape when it differs from `shape` (a client configured differently), else false.
local function shapeConflict(meta, shape)
  local stored = rcall('HGET', meta, 'shape')
  if stored and stored ~= shape then return stored end
  return false
end

-- Sets positions ARGV[from..#ARGV] in the segments KEYS[base + 1 + seg]; returns how many bits were clear.
local function setPositions(base, perKey, from)
  local changed = 0
  for i = from, #ARGV do
    local p = tonumber(ARGV[i])
    local seg = math.floor(p / perKey)
    changed = changed + (1 - rcall('SETBIT', KEYS[base + 1 + seg], p - seg * perKey, 1))
  end
  return changed
end

-- True while rebuild `id` (or any rebuild, when id is nil) holds an unexpired lease.
local function building(meta, id, now)
  local b = rcall('HMGET', meta, 'building', 'deadline')
  if not b[1] or tonumber(b[2]) <= now then return false end
  return id == nil or b[1] == id
end
