-- stock/sync: the step before the WAIT of a replicated acknowledgement, sent with it on one connection.
-- KEYS: [1] stock hash
-- ARGV: [1..] reservation ids (none: only the write, for setStock)
-- Reads the state of the given reservations and makes one write, so that the WAIT that follows waits for
-- everything this master holds, those reservations included, whichever connection wrote them (WAIT
-- counts the writes of its own connection only). If this master does not hold a reservation, the write it
-- was asked about was lost (a failover since) or happened on another master: not acknowledged.
-- Returns: one integer per id: 0 no such reservation, 1 held, 2 confirmed, 3 released. Nothing is written
--          when the stock hash does not exist (then every id answers 0).
-- Runs while memory is full (OOM): its first write is an HDEL that cannot grow memory.
local rcall = redis.call
local out = {}
if rcall('EXISTS', KEYS[1]) == 0 then
  for i = 1, #ARGV do out[i] = 0 end
  return out
end
local codes = { H = 1, C = 2, R = 3 }
if #ARGV > 0 then
  local fields = {}
  for i = 1, #ARGV do fields[i] = 'r:' .. ARGV[i] end
  local recs = rcall('HMGET', KEYS[1], unpack(fields))
  for i = 1, #ARGV do
    if recs[i] then out[i] = codes[string.sub(recs[i], 1, 1)] or 0 else out[i] = 0 end
  end
end
-- HSET always counts as a change, so it is replicated even with the same value: the write WAIT waits for.
rcall('HDEL', KEYS[1], '-')
rcall('HSET', KEYS[1], 'sync', '1')
return out
