-- cache/bloom-check: test the k bits of one or more items; read-only.
-- KEYS: [1..] bitmap segments
-- ARGV: [1] bits per key, [2] k (positions per item), [3..] bit positions, k per item
-- Returns: one integer per item: 1 all its bits are set (maybe present), 0 one is clear (absent).
local rcall = redis.call
local perKey, k = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
if #KEYS == 1 then
  -- One segment: offsets are the positions themselves.
  local key = KEYS[1]
  for first = 3, #ARGV, k do
    local hit = 1
    for i = first, first + k - 1 do
      if rcall('GETBIT', key, ARGV[i]) == 0 then
        hit = 0
        break
      end
    end
    out[#out + 1] = hit
  end
  return out
end
for first = 3, #ARGV, k do
  local hit = 1
  for i = first, first + k - 1 do
    local p = tonumber(ARGV[i])
    local seg = math.floor(p / perKey)
    if rcall('GETBIT', KEYS[1 + seg], p - seg * perKey) == 0 then
      hit = 0
      break
    end
  end
  out[#out + 1] = hit
end
return out
