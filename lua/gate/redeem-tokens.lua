-- gate/redeem-tokens: spend a batch of purchase tokens, each once, within its lifetime and its sale's window,
-- by one Redis TIME; in order, so a token listed twice is spent by its first entry only.
-- KEYS: [1..n] the tokens' used-marker keys (strings; set NX, expiring when the token does)
-- ARGV: per token, two: its expiresAt (epoch ms), its sale's endsAt (epoch ms) or ''
-- Returns: one code per token, as gate/redeem-token: 0 redeemed now, 1 expired, 2 already redeemed, 3 the
--          sale has ended. Only 0 writes.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  local ends, expiresAt = ARGV[2 * i], tonumber(ARGV[2 * i - 1])
  if ends ~= '' and now >= tonumber(ends) then
    out[i] = 3
  elseif now >= expiresAt then
    out[i] = 1
  elseif not redis.call('SET', KEYS[i], '1', 'NX', 'PX', string.format('%d', expiresAt - now)) then
    out[i] = 2
  else
    out[i] = 0
  end
end
return out
