-- lock/release: compare-and-delete; wakes waiters (PUBLISH) when one has registered through the flag.
-- KEYS: per lock i (from 0): [2i+1] lock (string: the owner's token), [2i+2] waiters flag
-- ARGV: per lock: token, release channel
-- Returns: one integer per lock: 1 released, 0 not the owner (expired, taken over, or never held; nothing
--          written). A key of another type (overwritten by hand) counts as another owner's: pcall turns
--          WRONGTYPE into a mismatch. Releases sent in the same tick share this script.
local rcall = redis.call
local out = {}
for i = 0, #KEYS / 2 - 1 do
  local lock = KEYS[2 * i + 1]
  if redis.pcall('GET', lock) ~= ARGV[2 * i + 1] then
    out[i + 1] = 0
  else
    rcall('DEL', lock)
    if rcall('EXISTS', KEYS[2 * i + 2]) == 1 then rcall('PUBLISH', ARGV[2 * i + 2], '1') end
    out[i + 1] = 1
  end
end
return out
