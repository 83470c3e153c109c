-- outbox/dead-letter: move an entry this consumer just failed on for the last time to the dead-letter stream.
-- KEYS: [1] stream, [2] dead-letter stream (same hash slot; a stream or missing)
-- ARGV: [1] group, [2] consumer, [3] entry id, [4] the handler's error text, [5] dead-letter MAXLEN or ''
-- Returns: 1 moved; 0 not moved (no longer pending with this consumer: reclaimed by another, acknowledged, or
--          trimmed away); a WRONGTYPE error, nothing changed, when KEYS[2] holds something other than a stream.
-- @include outbox/includes/dead.lua

local wrongType = deadLetterKeyError()
if wrongType then return wrongType end
local pending = rcall('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])[1]
if not pending then return 0 end
local entry = rcall('XRANGE', KEYS[1], ARGV[3], ARGV[3])[1]
if not entry then
  rcall('XACK', KEYS[1], ARGV[1], ARGV[3])
  return 0
end
deadLetter(ARGV[1], ARGV[3], entry[2], tonumber(pending[4]), ARGV[4], ARGV[5])
return 1
