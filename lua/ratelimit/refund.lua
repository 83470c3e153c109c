-- ratelimit/refund: give tokens back to buckets (the Cluster path of RateLimits.check undoing its takes).
-- KEYS: [1..n] bucket keys (string "<units> <updatedAtUs>", see includes/bucket.lua; missing = full)
-- ARGV: per key: capacity, refill per second, tokens to give back
-- Returns: the number of keys written (a key that holds no bucket is skipped). A bucket that reaches
--          capacity is deleted (missing = full), so a take followed by its refund leaves it as if neither
--          had happened.
-- @include ratelimit/includes/bucket.lua

local now = nowUs()
local nowText = format('%d', now)
local written = 0
for k = 1, #KEYS do
  local capU, rate = tonumber(ARGV[3 * k - 2]) * U, tonumber(ARGV[3 * k - 1])
  local u = readUnits(KEYS[k], capU, rate, now)
  if u then
    u = u + tonumber(ARGV[3 * k]) * U
    if u > capU then u = capU end
    writeUnits(KEYS[k], capU, rate, u, now, nowText)
    written = written + 1
  end
end
return written
