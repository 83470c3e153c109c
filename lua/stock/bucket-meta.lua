-- stock/bucket-meta: the record of a bucketed SKU (how many buckets, its total, a setStock in progress).
-- KEYS: [1] meta hash ({<prefix>:<sku>}:buckets), [2] the one-bucket stock hash of the same SKU
-- ARGV: [1] 'begin', 'commit' or 'abort', [2] bucket count, [3] operation id, [4] (begin) the new total
-- Returns (begin): {0, opId, total, delta, 0} the operation to apply to the buckets: this call's, or an
--          earlier call's that did not finish (the caller completes that one first; its last field is 1);
--          {1, 0, 0, 0, 0} a one-bucket SKU of that name exists; {2, count, 0, 0, 0} the SKU has another
--          bucket count. Nothing is written unless the code is 0.
-- Returns (commit): {0, total, 0, 0, 0} the total is recorded and the operation cleared (a repeat: a no-op);
--          (abort): the same, the operation cleared and the total unchanged (its units were put back).
-- The meta hash: n (bucket count), initial (the committed total), op ("<id>|<total>|<delta>" while a
-- setStock is being applied to the buckets).
local rcall = redis.call
local n = tonumber(ARGV[2])
if ARGV[1] == 'commit' or ARGV[1] == 'abort' then
  local op = rcall('HGET', KEYS[1], 'op')
  if op then
    local id, total = string.match(op, '^(.-)|(%-?%d+)|')
    if id == ARGV[3] then
      if ARGV[1] == 'commit' then rcall('HSET', KEYS[1], 'initial', total) end
      rcall('HDEL', KEYS[1], 'op')
    end
  end
  return { 0, tonumber(rcall('HGET', KEYS[1], 'initial') or '0'), 0, 0, 0 }
end
if rcall('EXISTS', KEYS[2]) == 1 then return { 1, 0, 0, 0, 0 } end
local m = rcall('HMGET', KEYS[1], 'n', 'initial', 'op')
if m[1] and tonumber(m[1]) ~= n then return { 2, tonumber(m[1]), 0, 0, 0 } end
if m[3] then
  local id, total, delta = string.match(m[3], '^(.-)|(%-?%d+)|(%-?%d+)$')
  return { 0, id, tonumber(total), tonumber(delta), 1 }
end
local total = tonumber(ARGV[4])
local delta = total - tonumber(m[2] or '0')
rcall('HSET', KEYS[1], 'n', n, 'op', ARGV[3] .. '|' .. total .. '|' .. delta)
return { 0, ARGV[3], total, delta, 0 }
