-- gate/captcha-take: spend a CAPTCHA challenge (single use: any attempt by its user deletes it), judge it.
-- KEYS: [1] the challenge key (string "<userId or empty>\n<answer>", set with a TTL when issued)
-- ARGV: [1] the answer given (normalised), [2] the user answering
-- Returns: 0 right, 1 unknown or expired, 2 wrong answer, 3 issued to another user (left in place, so
--          nobody can burn another user's challenge).
local v = redis.call('GET', KEYS[1])
if not v then return 1 end
local owner, answer = string.match(v, '^([^\n]*)\n(.*)$')
if owner ~= '' and owner ~= ARGV[2] then return 3 end
redis.call('DEL', KEYS[1])
if answer ~= ARGV[1] then return 2 end
return 0
