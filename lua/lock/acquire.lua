-- lock/acquire: take free locks with the callers' random tokens and draw each resource's next fencing token.
-- KEYS: per lock i (from 0): [3i+1] lock (string: owner's token, PX ttl), [3i+2] fence counter (integer,
--       never expires), [3i+3] waiters flag
-- ARGV: per lock: token, ttlMs, waiters-flag ttl in ms when that caller waits for a release message, else '0'
-- Returns: one reply per lock: the fence >= 1 as decimal text when acquired (strictly increasing per resource;
--          text, because a client's integer decoder may round values near 2^53); the integer -(pttl + 2) when
--          another owner holds it (pttl = its remaining ms, -1 when it has no expiry), writing only the flag;
--          0 when its fence counter holds no count that can be raised and stay exact (a negative number, text,
--          another type, 2^53 - 1 or more, past which Lua and JavaScript numbers skip integers): nothing is
--          written for that lock, not even the counter; the error reply of the counter's INCR when Redis
--          refused it (OOM under `maxmemory` with `noeviction`): nothing is written for that lock.
-- The waiters flag is best effort: under OOM it is not set, and that waiter retries on its pause instead.
-- Locks asked for in the same tick share this script; each is decided on its own, in order.
local rcall = redis.call
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local lock, fence, waiters = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  if rcall('EXISTS', lock) == 1 then
    local wait = tonumber(ARGV[3 * i + 3])
    -- Only ever lengthened: a waiter with a shorter pause must not cut short another waiter's flag.
    if wait > 0 and rcall('PTTL', waiters) < wait then redis.pcall('SET', waiters, '1', 'PX', wait) end
    out[i + 1] = -(rcall('PTTL', lock) + 2)
  else
    -- Check the counter before writing anything: a valid count is absent or a non-negative integer below
    -- 2^53 - 1 = 9007199254740991, compared as digits (16 digits at most, no leading zeros past one), since
    -- tonumber would round it. The pcalls also cover a key of another type.
    local count = redis.pcall('GET', fence)
    local f = false
    if not count then
      f = redis.pcall('INCR', fence)
    elseif type(count) == 'string' and string.find(count, '^%d+$') then
      local digits = string.gsub(count, '^0+(%d)', '%1')
      if #digits < 16 or (#digits == 16 and digits < '9007199254740991') then
        f = redis.pcall('INCR', fence)
      end
    end
    if type(f) == 'table' then
      out[i + 1] = f -- {err = 'OOM …'}: sent as an error inside the array, for that lock's caller alone
    elseif type(f) ~= 'number' then
      out[i + 1] = 0
    else
      rcall('SET', lock, ARGV[3 * i + 1], 'PX', ARGV[3 * i + 2])
      out[i + 1] = string.format('%d', f) -- exact below 2^53 (tostring would round to 14 digits)
    end
  end
end
return out
