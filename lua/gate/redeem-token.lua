-- gate/redeem-token: spend a purchase token once, within its lifetime and the sale's window, by Redis TIME.
-- KEYS: [1] the token's used-marker key (string; set NX, expiring when the token does)
-- ARGV: [1] the token's expiresAt (epoch ms), [2] the sale's endsAt (epoch ms) or ''
-- Returns: 0 redeemed now, 1 expired, 2 already redeemed, 3 the sale has ended. Only 0 writes.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] ~= '' and now >= tonumber(ARGV[2]) then return 3 end
local expiresAt = tonumber(ARGV[1])
if now >= expiresAt then return 1 end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', string.format('%d', expiresAt - now)) then return 2 end
return 0
