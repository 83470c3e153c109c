-- lock/acquire: take a free lock with the caller's random token and draw the resource's next fencing token.
-- KEYS: [1] lock (string: the owner's token, PX ttl), [2] fence counter (integer, never expires), [3] waiters flag
-- ARGV: [1] token, [2] ttlMs, [3] waiters-flag ttl in ms when the caller waits for a release message, else '0'
-- Returns: {1, fence} acquired, fence strictly increasing per resource;
--          {0, pttl} held by another owner (its remaining ms, -1 when it has no expiry); writes only the flag.
local rcall = redis.call
if rcall('EXISTS', KEYS[1]) == 1 then
  local wait = tonumber(ARGV[3])
  if wait > 0 then rcall('SET', KEYS[3], '1', 'PX', wait) end
  return { 0, rcall('PTTL', KEYS[1]) }
end
-- INCR first: if the counter was overwritten with a non-integer it raises before anything is written.
local fence = rcall('INCR', KEYS[2])
rcall('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return { 1, fence }
