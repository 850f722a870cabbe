-- Rotate a refresh token family's current token, or end the family on reuse.
-- KEYS[1]: the family's hash: `current` (the digest of the valid refresh token), `data` (the
-- sealed session), and `u:<digest>` for every token rotated away.
-- ARGV[1]: the digest presented; ARGV[2]: the new digest.
-- Reply: {1, data} rotated; {2} a token rotated away was presented again (reuse: the family
-- is deleted, the caller revokes its access tokens); {3} a digest the family never issued
-- (refused, the family left alone: knowing a family id is not enough to end it); {0} no such
-- family (expired, ended or never issued).
local current = redis.call('HGET', KEYS[1], 'current')
if not current then
  return {0}
end
if current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'current', ARGV[2], 'u:' .. ARGV[1], '1')
  return {1, redis.call('HGET', KEYS[1], 'data')}
end
if redis.call('HEXISTS', KEYS[1], 'u:' .. ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1])
  return {2}
end
return {3}
