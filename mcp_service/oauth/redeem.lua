-- Redeem an authorization code once, fleet-wide.
-- KEYS[1]: the code's record; KEYS[2]: its "used" marker (same hash tag, same slot).
-- ARGV[1]: seconds the marker lives (how long a replay is still recognised).
-- Reply: {1, record} the first time (the record is moved to the marker), {2, record} for a
-- code redeemed before (a replay: the caller revokes what the first redemption issued),
-- {0} for a code never issued or long expired.
local record = redis.call('GET', KEYS[1])
if record then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[1]))
  return {1, record}
end
local used = redis.call('GET', KEYS[2])
if used then
  return {2, used}
end
return {0}
