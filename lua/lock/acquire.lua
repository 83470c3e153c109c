-- lock/acquire: take a free lock with the caller's random token and draw the resource's next fencing token.
-- KEYS: [1] lock (string: the owner's token, PX ttl), [2] fence counter (integer, never expires), [3] waiters flag
-- ARGV: [1] token, [2] ttlMs, [3] waiters-flag ttl in ms when the caller waits for a release message, else '0'
-- Returns: fence >= 1 when acquired (strictly increasing per resource); -(pttl + 2) when another owner holds
--          it (pttl = its remaining ms, -1 when it has no expiry), writing only the flag. One integer: cheap.
local rcall = redis.call
if rcall('EXISTS', KEYS[1]) == 1 then
  local wait = tonumber(ARGV[3])
  if wait > 0 then rcall('SET', KEYS[3], '1', 'PX', wait) end
  return -(rcall('PTTL', KEYS[1]) + 2)
end
-- INCR first: if the counter was overwritten with a non-integer it raises before the lock is written.
local fence = rcall('INCR', KEYS[2])
if fence < 1 then return redis.error_reply('ERR fence counter ' .. KEYS[2] .. ' is below 1') end
rcall('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return fence
