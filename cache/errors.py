"""Every error the cache package raises, in one tree under `CacheError`.

    CacheError
    ├── JwksError                  the key source (cache.jwks)
    │   ├── InvalidJwksError       a document with no usable key; never cached
    │   ├── JwksFetchError         the endpoint could not be read
    │   ├── UnknownKeyError        a kid not published, even after any refresh allowed now
    │   └── JwksUnavailableError   no key can be had now (`retry_after`)
    ├── SharedUnavailable          a call through the Redis gate that has no default to fall
    │   │                          back to (cache.redis: `SharedRedis.execute`, `subscribe`)
    │   └── RevocationError        a revocation could not be written or read
    └── RespError                  the rate limiter's own RESP connection (cache.redisline)
        ├── RespUnavailable        no usable connection: refused, lost, timed out, garbled
        └── RespReplyError         Redis answered with an error (-NOSCRIPT, -READONLY, ...)

redis-py's own errors (`redis.exceptions.RedisError`, and `RedisClusterException`, which its
cluster client raises when no node can be reached) never leave cache/: the gate turns them
into its default or into `SharedUnavailable`. The RESP errors are named apart from it so that an
`except` clause says which client it means.
"""

from __future__ import annotations


class CacheError(Exception):
    """Base of every error raised by the cache package."""


class JwksError(CacheError):
    """Base of the key-source errors."""


class InvalidJwksError(JwksError):
    """A JWKS document that offers no usable key; it is never cached."""


class JwksFetchError(JwksError):
    """The JWKS endpoint could not be read (network, status, size)."""


class UnknownKeyError(JwksError):
    """The `kid` is not among the published keys, even after any refresh allowed now."""

    def __init__(self, kid: str) -> None:
        super().__init__("unknown kid")
        self.kid = kid


class JwksUnavailableError(JwksError):
    """No key can be had right now; `retry_after` is a hint in seconds."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class SharedUnavailable(CacheError):
    """Redis could not complete a call whose caller needs an answer, not a default: REDIS_URL
    is not set, or Redis was unreachable, failed or timed out."""


class RevocationError(SharedUnavailable):
    """A revocation could not be written or read (Redis unreachable or not configured)."""


class RespError(CacheError):
    """Base of what a command on the RESP connection can fail with."""


class RespUnavailable(RespError):
    """No usable connection: refused, lost, timed out, or an unparseable reply."""


class RespReplyError(RespError):
    """Redis answered with an error (`-ERR ...`, `-NOSCRIPT ...`, `-READONLY ...`)."""
