-- outbox/reclaim: take over entries idle past a timeout (XAUTOCLAIM) and dead-letter the worn-out ones.
-- KEYS: [1] stream, [2] dead-letter stream (same hash slot; a stream or missing)
-- ARGV: [1] group, [2] consumer, [3] min idle ms, [4] XAUTOCLAIM cursor, [5] count, [6] maxDeliveries,
--       [7] dead-letter MAXLEN or '', [8] dead.error text for entries dead-lettered here
-- Returns: {nextCursor, entries, deadLettered}, entries = {{id, deliveries with this one, {field, value, …}}, …};
--          a WRONGTYPE error, nothing changed, when KEYS[2] holds something other than a stream.
-- Entries already delivered maxDeliveries times go to the dead-letter stream instead of being delivered once
-- more. JUSTID claims without counting a delivery, so an entry that will be dead-lettered is not counted
-- twice; XCLAIM then counts the delivery of the entries handed out.
-- @include outbox/includes/dead.lua

local wrongType = deadLetterKeyError()
if wrongType then return wrongType end
local group, consumer = ARGV[1], ARGV[2]
local maxDeliveries = tonumber(ARGV[6])
local claimed = rcall('XAUTOCLAIM', KEYS[1], group, consumer, ARGV[3], ARGV[4], 'COUNT', ARGV[5], 'JUSTID')
local out, dead = {}, 0
for _, id in ipairs(claimed[2]) do
  local entry = rcall('XRANGE', KEYS[1], id, id)[1]
  if not entry then
    -- Trimmed or deleted since it was read: nothing is left to deliver.
    rcall('XACK', KEYS[1], group, id)
  else
    local deliveries = tonumber(rcall('XPENDING', KEYS[1], group, id, id, 1)[1][4])
    if deliveries >= maxDeliveries then
      deadLetter(group, id, entry[2], deliveries, ARGV[8], ARGV[7])
      dead = dead + 1
    else
      rcall('XCLAIM', KEYS[1], group, consumer, 0, id, 'JUSTID', 'RETRYCOUNT', deliveries + 1)
      out[#out + 1] = { id, deliveries + 1, entry[2] }
    end
  end
end
return { claimed[1], out, dead }
