-- ratelimit/includes/bucket: the token-bucket state shared by the ratelimit scripts (not a script of its own).
-- KEYS and ARGV: those of the including script. A bucket is a string "<units> <updatedAtUs>": its tokens in
-- millionths (whole numbers, so no float is ever formatted) and the Redis TIME of the last write in
-- microseconds. A missing key is a full bucket: a bucket that is full again is deleted, or expires on its
-- own at the moment it would be full. A rate of R tokens a second is R units a microsecond.
local rcall = redis.call
local format, match, ceil = string.format, string.match, math.ceil
local U = 1000000 -- units per token
local EPS = 0.001 -- units: tolerance for the doubles the refill produces

local function nowUs()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Units in the bucket at `now`, refilled since its last write and capped at `capU`; nil when the key holds
-- something else (another program wrote it), so that only the requests using that key fail.
local function readUnits(key, capU, rate, now)
  local v = redis.pcall('GET', key)
  if not v then return capU end
  if type(v) ~= 'string' then return nil end
  local s, at = match(v, '^(%d+) (%d+)$')
  if not s then return nil end
  local elapsed = now - tonumber(at)
  if elapsed < 0 then elapsed = 0 end -- a failover to a node whose clock is behind: refill nothing
  local units = tonumber(s) + elapsed * rate
  if units > capU then return capU end
  return units
end

-- Stores `units` at `now` (rounded down: never more than earned), expiring when the bucket would be full
-- again; a full bucket is deleted instead. `nowText` is `now` formatted once per script. PXAT rather than PX:
-- Redis would otherwise rewrite the command to PXAT for propagation, allocating on every write.
local function writeUnits(key, capU, rate, units, now, nowText)
  if units >= capU - EPS then
    rcall('DEL', key)
    return
  end
  if units < 0 then units = 0 end
  rcall('SET', key, format('%d ', units) .. nowText, 'PXAT', format('%d', ceil((now + (capU - units) / rate) / 1000)))
end
