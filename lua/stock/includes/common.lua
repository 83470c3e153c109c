-- stock/includes/common: helpers pasted into the stock scripts (not a script of its own).
-- KEYS and ARGV: those of the including script; KEYS[1] meta, [2] users, [3] reservations, [4] holds, [5] events.
-- A reservation record is packed as "<state>|<quantity>|<expiresAtMs or 0>|<remaining>|<userId>";
-- state is H (held), C (confirmed) or R (released). userId comes last because it may contain '|'.
local rcall = redis.call

local function nowMs()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function unpackRecord(rec)
  local state, qty, exp, remaining, user = string.match(rec, '^(%a)|(%d+)|(%-?%d+)|(%-?%d+)|(.*)$')
  return state, tonumber(qty), tonumber(exp), tonumber(remaining), user
end

local function packRecord(state, qty, exp, remaining, user)
  return state .. '|' .. qty .. '|' .. exp .. '|' .. remaining .. '|' .. user
end

local function appendEvent(maxlen, sku, kind, rid, user, qty, now, cause)
  local args = { 'XADD', KEYS[5] }
  if maxlen ~= '' then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = maxlen
  end
  args[#args + 1] = '*'
  local fields = { 'type', kind, 'sku', sku, 'reservationId', rid, 'userId', user, 'quantity', qty, 'at', now }
  for i = 1, #fields do args[#args + 1] = fields[i] end
  if cause then
    args[#args + 1] = 'cause'
    args[#args + 1] = cause
  end
  rcall(unpack(args))
end

-- Returns a held reservation's units to stock and the user's quota, and records it as released.
local function giveBack(rid, qty, exp, remaining, user, maxlen, sku, now, cause)
  rcall('HSET', KEYS[3], rid, packRecord('R', qty, exp, remaining, user))
  rcall('HINCRBY', KEYS[1], 'held', -qty)
  if tonumber(rcall('HGET', KEYS[1], 'available')) ~= -1 then
    rcall('HINCRBY', KEYS[1], 'available', qty)
  end
  if rcall('HINCRBY', KEYS[2], user, -qty) <= 0 then rcall('HDEL', KEYS[2], user) end
  rcall('ZREM', KEYS[4], rid)
  appendEvent(maxlen, sku, 'released', rid, user, qty, now, cause)
end
