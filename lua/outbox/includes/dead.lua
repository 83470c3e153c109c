-- outbox/includes/dead: move one pending stream entry to its dead-letter stream (not a script of its own).
-- KEYS and ARGV: those of the including script; KEYS[1] the stream, KEYS[2] its dead-letter stream.
-- A dead letter keeps the entry's fields and adds dead.stream, dead.id, dead.group, dead.deliveries and
-- dead.error; the entry is then acknowledged so that the group never delivers it again.
local rcall = redis.call

-- The dead-letter key must be a stream or missing: checked before the script's first write, so that a key of
-- another type fails the call with nothing changed (not after entries were claimed and their counts bumped).
-- Returns an error reply to return from the script, or nil.
local function deadLetterKeyError()
  local kind = rcall('TYPE', KEYS[2]).ok
  if kind == 'none' or kind == 'stream' then return nil end
  return redis.error_reply('WRONGTYPE the dead-letter key ' .. KEYS[2] .. ' holds a ' .. kind ..
    ', not a stream; nothing was changed')
end

local function deadLetter(group, id, fields, deliveries, err, maxlen)
  local args = { 'XADD', KEYS[2] }
  if maxlen ~= '' then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = maxlen
  end
  args[#args + 1] = '*'
  for i = 1, #fields do args[#args + 1] = fields[i] end
  local meta = { 'dead.stream', KEYS[1], 'dead.id', id, 'dead.group', group, 'dead.deliveries', deliveries,
    'dead.error', err }
  for i = 1, #meta do args[#args + 1] = meta[i] end
  rcall(unpack(args))
  rcall('XACK', KEYS[1], group, id)
end
