"""Settings and in-process services for tests, pointed at the test pool of tests.support.tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import pytest
from fastmcp import FastMCP

from mcp_service.app import Service, build_service
from mcp_service.settings import Settings
from tests.support.tokens import CLIENT_ID, POOL_ID, REGION, jwks_of, rsa_key


def make_settings(**overrides: Any) -> Settings:
    """Settings for the test pool, ignoring any .env file and with explicit values."""
    values: dict[str, Any] = {
        "app_env": "test",
        "cognito_region": REGION,
        "user_pool_id": POOL_ID,
        "app_client_id": CLIENT_ID,
        "jwks_failure_backoff_seconds": 0,
        "redis_url": "",  # in process unless a test asks for Redis: never a developer's REDIS_URL
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class FakeJwks:
    """A JWKS download that serves the test keys, counts calls and can be switched off."""

    def __init__(self) -> None:
        self.document: Any = jwks_of(rsa_key())
        self.up = True
        self.calls = 0

    async def __call__(self) -> bytes:
        from cache.errors import JwksFetchError

        self.calls += 1
        if not self.up:
            raise JwksFetchError("JWKS endpoint unreachable: ConnectError")
        return json.dumps(self.document).encode()


# Which twin of each hot path `make_service` builds: the hot one (what `serve` runs) or only
# the general one. A behaviour suite runs through both with `pytestmark = TWINS`, as uvicorn
# runs its protocol tests against h11 and httptools.
HOT_PATHS: ContextVar[bool] = ContextVar("hot_paths", default=True)


@pytest.fixture(params=[True, False], ids=["hot-path", "general-path"])
def request_path_twins(request: pytest.FixtureRequest) -> Iterator[bool]:
    token = HOT_PATHS.set(request.param)
    yield request.param
    HOT_PATHS.reset(token)


TWINS = pytest.mark.usefixtures("request_path_twins")


def make_service(
    fetch: FakeJwks | None = None, *, server: FastMCP[Any] | None = None, **overrides: Any
) -> Service:
    """The service around `server` (default: MCP_APP's, the demo unless overridden)."""
    return build_service(
        make_settings(**overrides),
        server=server,
        jwks_fetch=fetch or FakeJwks(),
        hot_paths=HOT_PATHS.get(),
    )
