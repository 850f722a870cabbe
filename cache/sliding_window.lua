-- The sliding window counter of cache/windows.py (same arithmetic as MemoryWindows), on Redis.
-- Checks every limit of the key, consumes all of them or none, and answers with what the
-- headers need, in one round trip. Loaded once by cache/windows.py (SCRIPT LOAD, then EVALSHA).
--
-- KEYS: the current and the previous window's counter per limit (one hash tag, so one Redis
-- Cluster slot). ARGV: the cost, then amount and window (ms) per limit. Reply: admitted (1/0),
-- then per limit the previous count, the current count and the current counter's TTL (ms).
-- A current counter is created with a TTL of two windows: its window ends when the TTL falls
-- to one window, and it is then renamed to the previous counter, which expires exactly when it
-- stops counting.
local cost = tonumber(ARGV[1])
local reply = {1}
local fresh = {}
for i = 1, #KEYS / 2 do
  local current, previous = KEYS[2 * i - 1], KEYS[2 * i]
  local amount, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local ttl = redis.call('PTTL', current)
  local p, c = 0, 0
  if ttl > window then
    p = tonumber(redis.call('GET', previous) or '0')
    c = tonumber(redis.call('GET', current) or '0')
  elseif ttl > 0 then
    redis.call('RENAME', current, previous)
    redis.call('SET', current, 0, 'PX', ttl + window)
    p = tonumber(redis.call('GET', previous) or '0')
    ttl = ttl + window
  else
    fresh[i] = true
    ttl = 2 * window
  end
  if math.floor(p * (ttl - window) / window) + c + cost > amount then
    reply[1] = 0
  end
  reply[3 * i - 1], reply[3 * i], reply[3 * i + 1] = p, c, ttl
end
if reply[1] == 1 then
  for i = 1, #KEYS / 2 do
    if fresh[i] then
      redis.call('SET', KEYS[2 * i - 1], cost, 'PX', reply[3 * i + 1])
    else
      redis.call('INCRBY', KEYS[2 * i - 1], cost)
    end
    reply[3 * i] = reply[3 * i] + cost
  end
end
return reply
