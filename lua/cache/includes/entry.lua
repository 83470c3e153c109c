-- cache/includes/entry: helpers pasted into the read-through cache's scripts (not a script of its own).

-- "s<Redis ms at which it turns stale>|<entry>": readers compare the stamp with their Redis-synced clock.
local function stamp(entry, staleInMs)
  local t = redis.call('TIME')
  local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(staleInMs)
  return 's' .. string.format('%d', at) .. '|' .. entry
end
