-- ratelimit/take: a batch of token-bucket takes on Redis TIME, in order; each group is all-or-nothing.
-- KEYS: [1..n] bucket keys (string "<units> <updatedAtUs>", see includes/bucket.lua; missing = full)
-- ARGV: per group: item count m, then m items of (key index, capacity, refill per second, cost); cost 0 reads.
-- Returns: flat array; per group: 1 taken or 0 rejected (then nothing of the group was written), then per
--          item the units (millionths of a token) it found, after earlier items of its group on the same key.
-- @include ratelimit/includes/bucket.lua

local now = nowUs()
local units, caps, rates, dirty = {}, {}, {}, {}
local gk, gcost, gpass = {}, {}, {} -- the current group, reused
local out, n = {}, 0
local i, nargs = 1, #ARGV
while i <= nargs do
  local m = tonumber(ARGV[i])
  i = i + 1
  n = n + 1
  local head = n
  local ok = true
  for j = 1, m do
    local k, costU = tonumber(ARGV[i]), tonumber(ARGV[i + 3]) * U
    local have = units[k]
    if have == nil then
      local capU, rate = tonumber(ARGV[i + 1]) * U, tonumber(ARGV[i + 2])
      have = readUnits(KEYS[k], capU, rate, now)
      units[k], caps[k], rates[k] = have, capU, rate
    end
    i = i + 4
    for q = 1, j - 1 do
      if gk[q] == k and gpass[q] then have = have - gcost[q] end
    end
    local pass = have >= costU - EPS
    if not pass then ok = false end
    gk[j], gcost[j], gpass[j] = k, costU, pass
    n = n + 1
    out[n] = floor(have + EPS)
  end
  out[head] = ok and 1 or 0
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
for k in pairs(dirty) do writeUnits(KEYS[k], caps[k], rates[k], units[k], now) end
return out
