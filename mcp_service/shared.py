"""What the fleet shares, built from settings: the Redis gate and the seal on shared entries."""

from __future__ import annotations

from cache.breaker import CircuitBreaker
from cache.redis import OperationHook, SharedRedis, create_redis
from cache.seal import Sealer
from mcp_service.settings import Settings


def shared_redis(settings: Settings, *, on_operation: OperationHook | None = None) -> SharedRedis:
    """The process's Redis gate; without REDIS_URL, a gate that is always closed."""
    client = None
    if settings.redis_url:
        client = create_redis(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            connect_timeout=settings.redis_connect_timeout_seconds,
            tls=settings.redis_tls,
            cluster=settings.redis_cluster,
        )
    return SharedRedis(
        client,
        prefix=settings.redis_key_prefix,
        timeout=settings.redis_timeout_seconds,
        breaker=CircuitBreaker(cooloff=settings.redis_breaker_cooloff_seconds),
        on_operation=on_operation,
    )


def sealer_for(settings: Settings) -> Sealer | None:
    secrets = [secret.get_secret_value() for secret in settings.token_cache_secret]
    return Sealer(secrets) if secrets else None
