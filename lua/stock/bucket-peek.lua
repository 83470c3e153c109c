-- stock/bucket-peek: one bucket's counters and unfinished outgoing transfers, read in one step (read-only).
-- KEYS: [1] the bucket's stock hash, [2] the bucket's moves hash
-- ARGV: none
-- Returns: {available, v, n, limit, startsAt or -1, endsAt or -1, held, confirmed, moves} where moves is the
--          flat list of unfinished transfers (id, "<to>|<units>", …); available is -1 and the rest 0 for a
--          bucket that does not exist.
local s = redis.call('HMGET', KEYS[1], 'available', 'v', 'n', 'limit', 'starts', 'ends', 'held', 'confirmed')
if not s[1] then return { -1, 0, 0, 0, -1, -1, 0, 0, {} } end
return { tonumber(s[1]), tonumber(s[2] or '0'), tonumber(s[3] or '0'), tonumber(s[4] or '0'),
  tonumber(s[5] or '-1'), tonumber(s[6] or '-1'), tonumber(s[7] or '0'), tonumber(s[8] or '0'),
  redis.call('HGETALL', KEYS[2]) }
