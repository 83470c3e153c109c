-- outbox/keep: keep a consumer's entries that wait their turn in a batch from looking idle, so that no other
-- consumer reclaims them meanwhile, and say which are still its own.
-- KEYS: [1] stream
-- ARGV: [1] group, [2] consumer, [3..] entry ids
-- Returns: one integer per id: 1 still this consumer's (its idle time reset; XCLAIM with JUSTID leaves the
--          delivery count as it is); 0 taken over by another consumer or no longer pending (skip it).
local out = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
