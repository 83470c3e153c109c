-- outbox/dead-letter: move an entry this consumer has just failed on for the last allowed time to the
-- dead-letter stream, with the handler's error.
-- KEYS: [1] stream, [2] dead-letter stream (same hash slot)
-- ARGV: [1] group, [2] consumer, [3] entry id, [4] error text, [5] dead-letter MAXLEN or ''
-- Returns: 1 moved; 0 not moved (the entry is no longer pending with this consumer: another consumer reclaimed
--          it, or it was acknowledged, or trimmed away).
-- @include outbox/includes/dead.lua

local pending = rcall('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])[1]
if not pending then return 0 end
local entry = rcall('XRANGE', KEYS[1], ARGV[3], ARGV[3])[1]
if not entry then
  rcall('XACK', KEYS[1], ARGV[1], ARGV[3])
  return 0
end
deadLetter(ARGV[1], ARGV[3], entry[2], tonumber(pending[4]), ARGV[4], ARGV[5])
return 1
