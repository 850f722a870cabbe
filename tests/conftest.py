"""Shared test set-up: async tests run on asyncio through anyio's pytest plugin (auto mode)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The twins fixture (`request_path_twins`) that behaviour suites run through both hot paths with.
pytest_plugins = ["tests.support.service"]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis of the integration tests (REDIS_URL, else 127.0.0.1:6379): a test that
    needs it fails when CI=true and Redis does not answer, and is skipped elsewhere."""
    import redis

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"Redis does not answer on {url}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys, and only its keys, are deleted afterwards."""
    import uuid

    import redis

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def key_prefix(redis_prefix: str) -> str:
    """A rate-limit key prefix (RATE_LIMIT_KEY_PREFIX ends in ':') of this test's own."""
    return f"{redis_prefix}:"
