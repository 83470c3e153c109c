-- queue/step: a batch of joins and status reads of one waiting room, in order, with the admissions they make
-- due (lazily, on Redis TIME: no background process moves the line).
-- KEYS: [1] meta (hash), [2] waiting (zset), [3] admitted (zset), [4] admission numbers (hash)
--       meta: seq, tokens, at, admitted, paused, draining; waiting: user -> place score (a pre-opening join
--       a uniform draw in [0, 1), a later join its sequence number >= 1); admitted: user -> pass expiresAt
--       (ms); admission numbers: user -> n, the n-th admission of the room
-- ARGV: [1] opensAt (epoch ms), [2] admissions per second (0: no rate limit), [3] burst, [4] maxActive
--       (0: no limit), [5] pass ttl (ms), [6] the operations (none: a stats read), one string: per operation
--       its kind, a space, the user id and a space (ids hold no spaces). The kind is 's' (status) or 'j'
--       (join), a join's followed by a random 53-bit integer (decimal) when the caller does not know the room
--       to be open: a join before the opening needs it for its place.
-- Returns: { now ms, paused 0/1, draining 0/1, whole tokens available (-1 without a rate), waiting count,
--          active passes, admissions so far } then per operation one integer, 8 x value + code, and for
--          code 2 a second integer:
--          1 waiting: value position (1-based)
--          2 admitted: value pass expiresAt (ms), then the admission number
--          3 before the opening: value waiting count
--          4 not in the room (status only: never joined, drained, pass used or expired), value 0
--          5 the room is draining: the join was refused and wrote nothing, value 0
--          6 a join before the opening came without a random: it wrote nothing (send it again with one)
-- Admissions: while open and not paused, the head of the line is admitted as long as the token bucket
-- (burst + rate x elapsed since the opening, capped at burst) and the number of unexpired passes allow, at
-- most 1,000 per call. A refused or read-only call writes nothing.
local rcall = redis.call
local format, floor, byte, sub, gmatch = string.format, math.floor, string.byte, string.sub, string.gmatch
local U = 1000000 -- units per token
local MAX_PER_CALL = 1000

local t = rcall('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = floor(nowUs / 1000)
local opensAt = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) -- tokens per second = units per microsecond
local burstU = tonumber(ARGV[3]) * U
local maxActive = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])

local m = rcall('HMGET', KEYS[1], 'tokens', 'at', 'admitted', 'paused', 'draining', 'seq')
local tokens, at, admitted = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]) or 0
local paused, draining = m[4] == '1', m[5] == '1'
local seq = tonumber(m[6]) or 0
local open = now >= opensAt
local dirty, seqDirty = false, false

-- Passes past their expiry free their places (a bounded sweep per call; the count below ignores the rest).
if open then
  local gone = rcall('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
  if #gone > 0 then
    rcall('ZREM', KEYS[3], unpack(gone))
    rcall('HDEL', KEYS[4], unpack(gone))
  end
end

-- The bucket, refilled to now: full at the opening, `rate` tokens a second since, never above burst.
if rate > 0 and open then
  if tokens == nil then
    tokens, at = burstU, nowUs
  else
    local elapsed = nowUs - at
    if elapsed < 0 then elapsed = 0 end -- a failover to a node whose clock is behind: refill nothing
    tokens = tokens + elapsed * rate
    if tokens > burstU then tokens = burstU end
    at = nowUs
  end
end

local active = open and rcall('ZCOUNT', KEYS[3], '(' .. now, '+inf') or 0
local waiting = rcall('ZCARD', KEYS[2])
local budget = MAX_PER_CALL

-- The operations, and what the call needs to know of the joiners, read in two commands and kept up to date
-- below as the call changes the line and the passes: whether each waits in line, and its pass's expiry (or
-- false). New joiners are added to the line in one command, before anything reads its order (flush).
local kinds, users, nOps = {}, {}, 0
local joiners, nJoins = {}, 0
for kind, user in gmatch(ARGV[6] or '', '([^ ]+) ([^ ]+) ') do
  nOps = nOps + 1
  kinds[nOps], users[nOps] = kind, user
  if byte(kind) ~= 115 then
    nJoins = nJoins + 1
    joiners[nJoins] = user
  end
end
local inLine, pass = {}, {} -- the joiners' (a status read asks the sorted sets itself)
if nJoins > 0 then
  local q = rcall('ZMSCORE', KEYS[2], unpack(joiners))
  local a = rcall('ZMSCORE', KEYS[3], unpack(joiners))
  for i = 1, nJoins do
    local user = joiners[i]
    inLine[user], pass[user] = q[i] ~= false, tonumber(a[i]) or false
  end
end
local adds, nAdds = {}, 0 -- score, user, score, user...: joined, not in the sorted set yet
local function flush()
  if nAdds > 0 then
    rcall('ZADD', KEYS[2], 'NX', unpack(adds, 1, nAdds))
    nAdds = 0
  end
end

-- Admits the head of the line as far as the bucket, the cap and this call's budget allow; returns how many.
local function admit()
  if not open or paused or budget <= 0 or waiting == 0 then return 0 end
  local k = budget
  if rate > 0 then
    local whole = floor((tokens + 0.001) / U)
    if whole < k then k = whole end
  end
  if maxActive > 0 and maxActive - active < k then k = maxActive - active end
  if k <= 0 then return 0 end
  flush()
  local popped = rcall('ZPOPMIN', KEYS[2], k)
  local n = #popped / 2
  if n == 0 then return 0 end
  local expiresAt = now + ttl
  for i = 1, #popped, 2 do
    local user = popped[i]
    admitted = admitted + 1
    rcall('ZADD', KEYS[3], expiresAt, user)
    rcall('HSET', KEYS[4], user, admitted)
    inLine[user], pass[user] = false, expiresAt
  end
  active = active + n
  waiting = waiting - n
  budget = budget - n
  if rate > 0 then tokens = tokens - n * U end
  dirty = true
  return n
end

-- The user's pass expiry if admitted and unexpired; an expired pass not swept yet is dropped here.
local function passOf(user)
  local exp = pass[user]
  if exp == nil then
    exp = tonumber(rcall('ZSCORE', KEYS[3], user)) or false
    pass[user] = exp
  end
  if exp and exp <= now then
    rcall('ZREM', KEYS[3], user)
    rcall('HDEL', KEYS[4], user)
    pass[user] = false
    return nil
  end
  return exp or nil
end

local out = { 0, 0, 0, 0, 0, 0, 0 }
local function put(code, v)
  out[#out + 1] = v * 8 + code
end
-- The standing of a user in line: the place once open (the line's order read now), the count before.
local function standing(user)
  if not open then
    put(3, waiting)
  else
    flush()
    put(1, rcall('ZRANK', KEYS[2], user) + 1)
  end
end
local function admittedOrGone(user, exp)
  if exp == nil then
    put(4, 0)
  else
    put(2, exp)
    out[#out + 1] = tonumber(rcall('HGET', KEYS[4], user)) or 0
  end
end

admit()
for i = 1, nOps do
  if i > 1 then
    -- Each operation of a batch is decided as if its call ran alone: a budget of its own, and the
    -- admissions its own call would have made first.
    budget = MAX_PER_CALL
    admit()
  end
  local kind, user = kinds[i], users[i]
  if byte(kind) == 115 then -- 's'
    -- Most reads come from users in line: one lookup.
    flush()
    local rank = rcall('ZRANK', KEYS[2], user)
    if rank then
      if open then put(1, rank + 1) else put(3, waiting) end
    else
      admittedOrGone(user, passOf(user))
    end
  else
    local exp = passOf(user)
    if exp ~= nil then
      admittedOrGone(user, exp)
    elseif inLine[user] then
      standing(user) -- a re-join keeps the place
    elseif draining then
      put(5, 0)
    elseif not open and #kind == 1 then
      put(6, 0) -- a new early joiner without a draw: sent back for one
    else
      local score
      if open then
        seq, seqDirty = seq + 1, true
        score = seq
      else
        score = tonumber(sub(kind, 2)) / 9007199254740992 -- 2^53: [0, 1)
      end
      adds[nAdds + 1], adds[nAdds + 2] = score, user
      nAdds = nAdds + 2
      inLine[user] = true
      waiting = waiting + 1
      if admit() > 0 then
        -- An empty line and a free place: in at once (or someone ahead went in, and this one waits).
        exp = passOf(user)
        if exp ~= nil then admittedOrGone(user, exp) else standing(user) end
      elseif open then
        put(1, waiting) -- at the back of the line
      else
        put(3, waiting)
      end
    end
  end
end
flush()

local fields = {}
if dirty then
  fields[#fields + 1], fields[#fields + 2] = 'admitted', admitted
  if rate > 0 then
    fields[#fields + 1], fields[#fields + 2] = 'tokens', format('%d', tokens)
    fields[#fields + 1], fields[#fields + 2] = 'at', format('%d', at)
  end
end
if seqDirty then fields[#fields + 1], fields[#fields + 2] = 'seq', seq end
if #fields > 0 then rcall('HSET', KEYS[1], unpack(fields)) end
out[1], out[2], out[3] = now, paused and 1 or 0, draining and 1 or 0
out[4] = rate > 0 and (open and floor((tokens + 0.001) / U) or ARGV[3] + 0) or -1
out[5], out[6], out[7] = waiting, active, admitted
return out
