-- stock/release: give a held reservation's units back to stock and the user's quota. Idempotent.
-- KEYS: [1] stock hash, [2] holds zset (reservation ids by expiry), [3] events stream
-- ARGV: [1] reservationId, [2] sku, [3] events MAXLEN or '', [4] restock pub/sub channel
-- Returns: 0 released (now or before), 1 already confirmed (nothing written), 2 unknown reservation.
-- A key of another type: a WRONGTYPE error before anything is written. Runs while memory is full (OOM).
-- @include stock/includes/common.lua
local wrong = wrongType()
if wrong then return wrong end

local rid = ARGV[1]
local rec = rcall('HGET', KEYS[1], 'r:' .. rid)
if not rec then return 2 end
local state, qty, exp, remaining, user = unpackRecord(rec)
if state == 'R' then return 0 end
if state == 'C' then return 1 end
giveBack(rid, qty, exp, remaining, user, ARGV[3], ARGV[2], nowMs(), 'released', ARGV[4])
return 0
