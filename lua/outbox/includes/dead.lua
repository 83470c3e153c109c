-- outbox/includes/dead: move one pending stream entry to its dead-letter stream (not a script of its own).
-- KEYS and ARGV: those of the including script; KEYS[1] the stream, KEYS[2] its dead-letter stream.
-- A dead letter keeps the entry's fields and adds dead.stream, dead.id, dead.group, dead.deliveries and
-- dead.error; the entry is then acknowledged so that the group never delivers it again.
local rcall = redis.call

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
