-- ratelimit/take: a batch of token-bucket takes on Redis TIME, in order; each group is all-or-nothing.
-- KEYS: [1..n] bucket keys (string "<units> <updatedAtUs>", see includes/bucket.lua; missing = full)
-- ARGV: [1] bucket settings, space-separated "<capacity>,<refill per second>"; [2] the groups, separated by
--       ';', each a space-separated list of items "<key index>,<settings index>,<cost>" (cost 0 reads)
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
for group in gmatch(ARGV[2], '[^;]+') do
  n = n + 1
  local head, m, ok, bad = n, 0, true, false
  for ks, ss, cs in gmatch(group, '(%d+),(%d+),(%d+)') do
    m = m + 1
    local k, costU = tonumber(ks), tonumber(cs) * U
    local have = units[k]
    if have == nil and not broken[k] then
      local s = settings[tonumber(ss)]
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
