"""Signed tokens whose claims are odd but well-formed JSON: every claim is type- and
range-checked before anything uses it, so each gets a 401 with a reason code: never a 500,
never a traceback, never a Redis error."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.service import TWINS, make_service
from tests.support.tokens import TokenFactory

pytestmark = TWINS

WHO = rpc("tools/call", {"name": "get_user_info", "arguments": {}})
LONE_SURROGATE = "\ud800"

ODD: list[tuple[str, Any]] = [
    ("sub", LONE_SURROGATE),
    ("sub", "alice" + LONE_SURROGATE),
    ("sub", 42),
    ("sub", ["alice"]),
    ("sub", "x" * 5000),
    ("client_id", LONE_SURROGATE),
    ("username", LONE_SURROGATE),
    ("username", {"name": "alice"}),
    ("jti", 123),
    ("jti", LONE_SURROGATE),
    ("origin_jti", ["a"]),
    ("scope", ["mcp/tools"]),
    ("scope", "mcp/tools" + LONE_SURROGATE),
    ("cognito:groups", "admins"),
    ("cognito:groups", [1, 2]),
    ("cognito:groups", [LONE_SURROGATE]),
    ("exp", 1e307),
    ("exp", 1e300),
    ("exp", 10**30),
    ("exp", float("inf")),
    ("exp", float("-inf")),
    ("exp", float("nan")),
    ("exp", "2000000000"),
    ("exp", True),
    ("iat", float("inf")),
    ("iat", -1e300),
    ("nbf", float("nan")),
    ("nbf", 1e307),
    ("auth_time", "yesterday"),
]


@pytest.mark.parametrize(("claim", "value"), ODD, ids=[f"{c}={v!r}"[:40] for c, v in ODD])
async def test_an_odd_claim_gets_401_with_a_reason(
    claim: str, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    token = TokenFactory().token(**{claim: value})
    caplog.set_level(logging.INFO)
    async with running(make_service().app) as client:
        response = await client.post(
            "/mcp", json=WHO, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401, response.text
    expected = {"wrong_client"} if claim == "client_id" else {"malformed"}
    assert response.json()["reason"] in expected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.redis
@pytest.mark.parametrize("exp", [1e307, 1e300, 10**30, 253402300800], ids=str)
async def test_an_odd_expiry_with_the_shared_token_cache_neither_fails_nor_trips_redis(
    redis_url: str, redis_prefix: str, exp: float, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(
        redis_url=redis_url,
        redis_key_prefix=redis_prefix,
        token_cache_secret="s" * 32,
        token_cache_l2=True,
        rate_limit="off",
    )
    token = TokenFactory().token(exp=exp)
    caplog.set_level(logging.WARNING)
    async with running(service.app) as client:
        response = await client.post(
            "/mcp", json=WHO, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401
    assert service.shared.breaker.state.value == "closed"
    assert not [r for r in caplog.records if "redis" in r.getMessage().lower()]


async def test_a_far_but_sane_expiry_is_served() -> None:
    token = TokenFactory().token(exp=4_000_000_000)  # year 2096
    async with running(make_service().app) as client:
        response = await client.post(
            "/mcp", json=WHO, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200
