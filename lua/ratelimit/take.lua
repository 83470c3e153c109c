-- ratelimit/take: a batch of token-bucket takes on Redis TIME, in order; each group is all-or-nothing.
-- KEYS: [1..n] bucket keys (string "<units> <updatedAtUs>", see includes/bucket.lua; missing = full)
-- ARGV: [1] bucket settings, space-separated "<capacity>,<refill per second>"; [2] the groups, binary: per
--       group its item count (2 bytes), then per item the key index (2), settings index (1), cost (4; 0 reads)
-- Returns: flat array; per group: 1 taken, 0 rejected or 2 a key holds no bucket (for 0 and 2 nothing of
--          the group was written), then per item the units (millionths of a token) it found, after earlier
--          items of its group on the same key, or -1 for a key that holds no bucket.
-- @include ratelimit/includes/bucket.lua

local gmatch = string.gmatch
local now = nowUs()
local nowText = format('%d', now)
local settings = {}
for cap, rate in gmatch(ARGV[1], '([^, ]+),([^, ]+)') do settings[#settings + 1] = { tonumber(cap) * U, tonumber(rate) } end
local units, caps, rates, dirty, broken = {}, {}, {}, {}, {}
local gk, gcost, gpass = {}, {}, {} -- the current group, reused
local out, n = {}, 0
-- Big-endian fields read with string.byte: no string is made per item, which is most of a parse's cost.
local byte = string.byte
local data = ARGV[2]
local p, len = 1, #data
while p <= len do
  local m1, m2 = byte(data, p, p + 1)
  p = p + 2
  local count = m1 * 256 + m2
  n = n + 1
  local head, m, ok, bad = n, 0, true, false
  for _ = 1, count do
    local k1, k2, si, c1, c2, c3, c4 = byte(data, p, p + 6)
    p = p + 7
    m = m + 1
    local k, costU = k1 * 256 + k2, (((c1 * 256 + c2) * 256 + c3) * 256 + c4) * U
    local s = settings[si]
    local have = units[k]
    if have == nil and not broken[k] then
      have = readUnits(KEYS[k], s[1], s[2], now)
      if have == nil then broken[k] = true else units[k], caps[k], rates[k] = have, s[1], s[2] end
    end
    n = n + 1
    if have == nil then
      bad = true
      gk[m], gcost[m], gpass[m] = k, costU, false
      out[n] = -1
    else
      for q = 1, m - 1 do
        if gk[q] == k and gpass[q] then have = have - gcost[q] end
      end
      local pass = have >= costU - EPS
      if not pass then ok = false end
      gk[m], gcost[m], gpass[m] = k, costU, pass
      out[n] = have + EPS -- the reply truncates it to an integer
    end
  end
  if bad then ok = false end
  out[head] = bad and 2 or ok and 1 or 0
  if ok then
    for j = 1, m do
      local c = gcost[j]
      if c > 0 then
        local k = gk[j]
        units[k] = units[k] - c
        dirty[k] = true
      end
    end
  end
end
for k in pairs(dirty) do writeUnits(KEYS[k], caps[k], rates[k], units[k], now, nowText) end
return out
