-- lock/acquire: take free locks with the callers' random tokens and draw each resource's next fencing token.
-- KEYS: per lock i (from 0): [3i+1] lock (string: owner's token, PX ttl), [3i+2] fence counter (integer,
--       never expires), [3i+3] waiters flag
-- ARGV: per lock: token, ttlMs, waiters-flag ttl in ms when that caller waits for a release message, else '0'
-- Returns: one integer per lock: fence >= 1 when acquired (strictly increasing per resource); -(pttl + 2) when
--          another owner holds it (pttl = its remaining ms, -1 when it has no expiry), writing only the flag;
--          0 when its fence counter holds no count INCR can raise (a negative number, text, another type,
--          2^63 - 1): nothing is written for that lock, not even the counter.
-- Locks asked for in the same tick share this script; each is decided on its own, in order.
local rcall = redis.call
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local lock, fence, waiters = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  if rcall('EXISTS', lock) == 1 then
    local wait = tonumber(ARGV[3 * i + 3])
    if wait > 0 then rcall('SET', waiters, '1', 'PX', wait) end
    out[i + 1] = -(rcall('PTTL', lock) + 2)
  else
    -- Check the counter before writing anything: a valid count is absent or a non-negative integer (INCR
    -- itself would happily count a negative one up). INCR still fails, writing nothing, on text that only
    -- looks like digits or at the 64-bit maximum; the pcalls also cover a key of another type.
    local count = redis.pcall('GET', fence)
    local f = false
    if not count or (type(count) == 'string' and string.find(count, '^%d+$')) then
      f = redis.pcall('INCR', fence)
    end
    if type(f) ~= 'number' then
      out[i + 1] = 0
    else
      rcall('SET', lock, ARGV[3 * i + 1], 'PX', ARGV[3 * i + 2])
      out[i + 1] = f
    end
  end
end
return out
