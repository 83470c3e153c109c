-- stock/state: what a process may answer reserve calls from, read in one step (read-only).
-- KEYS: [1] stock hash
-- ARGV: none
-- Returns: {n, available, perUserLimit, startsAt or -1, endsAt or -1, Redis time ms}: n = the reservation
--          records the SKU has ever made (records are never deleted, so a set of n of their ids read before is
--          all of them); all -1 for an unknown SKU.
local s = redis.call('HMGET', KEYS[1], 'n', 'available', 'limit', 'starts', 'ends')
if not s[2] then return { -1, -1, -1, -1, -1, -1 } end
local t = redis.call('TIME')
return { tonumber(s[1] or '0'), tonumber(s[2]), tonumber(s[3]), tonumber(s[4] or '-1'), tonumber(s[5] or '-1'),
  tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) }
