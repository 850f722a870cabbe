"""Rate limits as a client sees them over HTTP: who is counted, how much, and what it is told.

The service runs in process with its limits counted in process (no REDIS_URL); what Redis adds
-- one budget across replicas, and what happens when it fails -- is in test_ratelimit_redis.py
and tests/integration/.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx
import pytest

from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.service import TWINS, make_service
from tests.support.tokens import DROP, TokenFactory

pytestmark = TWINS  # every behaviour here, through both twins of each hot path

ADD = rpc("tools/call", {"name": "add", "arguments": {"a": 5, "b": 3}})
WHO = rpc("tools/call", {"name": "get_user_info", "arguments": {}})


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {**MCP_HEADERS, "Authorization": f"Bearer {token}", **extra}


def remaining(response: httpx.Response) -> int:
    return int(response.headers["ratelimit-remaining"])


async def calls(client: httpx.AsyncClient, token: str, n: int, body: Any = ADD) -> list[int]:
    statuses = []
    for _ in range(n):
        response = await client.post("/mcp", json=body, headers=bearer(token))
        statuses.append(response.status_code)
    return statuses


# Who is counted --------------------------------------------------------------------------------


async def test_tokens_of_one_subject_share_one_budget(tokens: TokenFactory) -> None:
    first, second = tokens.token(sub="alice"), tokens.token(sub="alice")  # distinct jti
    async with running(make_service(rate_limit="3/minute").app) as client:
        assert await calls(client, first, 2) == [200, 200]
        assert await calls(client, second, 2) == [200, 429]


async def test_another_subject_has_its_own_budget(tokens: TokenFactory) -> None:
    async with running(make_service(rate_limit="2/minute").app) as client:
        assert await calls(client, tokens.token(sub="alice"), 3) == [200, 200, 429]
        assert await calls(client, tokens.token(sub="bob"), 2) == [200, 200]


async def test_a_token_without_sub_is_counted_by_its_client_id(tokens: TokenFactory) -> None:
    anonymous = tokens.token(sub=DROP)
    async with running(make_service(rate_limit="2/minute").app) as client:
        assert await calls(client, anonymous, 2) == [200, 200]
        assert await calls(client, tokens.token(sub=DROP), 1) == [429]
        assert await calls(client, tokens.token(sub="alice"), 1) == [200]


async def test_a_member_of_a_tier_group_gets_that_tier(tokens: TokenFactory) -> None:
    service = make_service(rate_limit="1/minute", rate_limit_groups='{"premium": "3/minute"}')
    premium = tokens.token(sub="p", **{"cognito:groups": ["staff", "premium"]})
    async with running(service.app) as client:
        assert await calls(client, premium, 4) == [200, 200, 200, 429]
        assert await calls(client, tokens.token(sub="plain"), 2) == [200, 429]


async def test_the_first_tier_in_configuration_order_wins(tokens: TokenFactory) -> None:
    tiers = json.dumps({"gold": "5/minute", "silver": "2/minute"})
    service = make_service(rate_limit="1/minute", rate_limit_groups=tiers)
    token = tokens.token(**{"cognito:groups": ["silver", "gold"]})
    async with running(service.app) as client:
        response = await client.post("/mcp", json=ADD, headers=bearer(token))
    assert response.headers["ratelimit-policy"] == '"gold";q=5;w=60'


async def test_public_routes_are_not_counted(tokens: TokenFactory) -> None:
    async with running(make_service(rate_limit="1/minute").app) as client:
        for _ in range(3):
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert "ratelimit" not in health.headers
        assert await calls(client, tokens.token(), 1) == [200]


async def test_a_refused_token_spends_nothing(tokens: TokenFactory) -> None:
    async with running(make_service(rate_limit="1/minute").app) as client:
        expired = tokens.token(exp=1_000_000_000, iat=999_990_000)
        assert (await client.post("/mcp", json=ADD, headers=bearer(expired))).status_code == 401
        assert await calls(client, tokens.token(), 1) == [200]


# How much a request costs ---------------------------------------------------------------------


async def test_a_tool_with_a_cost_spends_that_many_units(tokens: TokenFactory) -> None:
    service = make_service(rate_limit="10/minute", rate_limit_tool_costs='{"get_user_info": 4}')
    token = tokens.token()
    async with running(service.app) as client:
        expensive = await client.post("/mcp", json=WHO, headers=bearer(token))
        cheap = await client.post("/mcp", json=ADD, headers=bearer(token))
    assert expensive.status_code == 200
    assert remaining(expensive) == 6
    assert remaining(cheap) == 5


async def test_a_call_that_would_overspend_is_refused_and_spends_nothing(
    tokens: TokenFactory,
) -> None:
    service = make_service(rate_limit="5/minute", rate_limit_tool_costs='{"get_user_info": 4}')
    token = tokens.token()
    async with running(service.app) as client:
        assert await calls(client, token, 2) == [200, 200]
        refused = await client.post("/mcp", json=WHO, headers=bearer(token))
        assert refused.status_code == 429
        assert await calls(client, token, 3) == [200, 200, 200]
        assert await calls(client, token, 1) == [429]


async def test_costs_apply_when_per_tool_scopes_have_read_the_body(tokens: TokenFactory) -> None:
    service = make_service(
        rate_limit="10/minute",
        rate_limit_tool_costs='{"get_user_info": 4}',
        tool_scopes='{"get_user_info": ["mcp/tools"]}',
    )
    async with running(service.app) as client:
        response = await client.post("/mcp", json=WHO, headers=bearer(tokens.token()))
    assert response.status_code == 200, response.text
    assert remaining(response) == 6


async def test_the_cost_comes_from_the_body_not_the_mcp_name_header(tokens: TokenFactory) -> None:
    service = make_service(rate_limit="10/minute", rate_limit_tool_costs='{"get_user_info": 4}')
    lying = bearer(tokens.token(), **{"Mcp-Method": "tools/call", "Mcp-Name": "add"})
    async with running(service.app) as client:
        response = await client.post("/mcp", json=WHO, headers=lying)
    assert remaining(response) == 6


async def test_a_tool_name_written_with_json_escapes_still_costs(tokens: TokenFactory) -> None:
    service = make_service(rate_limit="10/minute", rate_limit_tool_costs='{"get_user_info": 4}')
    body = json.dumps(WHO).replace("get_user_info", "get\\u005fuser_info")
    async with running(service.app) as client:
        response = await client.post("/mcp", content=body, headers=bearer(tokens.token()))
    assert response.json()["result"]["structuredContent"]["user"]  # the tool did run
    assert remaining(response) == 6


def test_a_request_spends_one_plus_the_extra_of_each_costly_call() -> None:
    from cache.windows import parse_limits
    from mcp_service.policies import Policies

    policies = Policies(parse_limits("10/minute"), tool_costs={"get_user_info": 4, "add": 1})
    assert policies.cost([]) == 1
    assert policies.cost(["add", "add"]) == 1
    assert policies.cost(["get_user_info"]) == 4
    assert policies.cost(["get_user_info", "add", "get_user_info"]) == 7


async def test_requests_other_than_tool_calls_cost_one(tokens: TokenFactory) -> None:
    service = make_service(rate_limit="10/minute", rate_limit_tool_costs='{"get_user_info": 4}')
    async with running(service.app) as client:
        response = await client.post("/mcp", json=rpc("tools/list"), headers=bearer(tokens.token()))
    assert remaining(response) == 9


# What the client is told ----------------------------------------------------------------------


async def test_an_admitted_response_carries_the_rate_limit_fields(tokens: TokenFactory) -> None:
    async with running(make_service(rate_limit="600/minute").app) as client:
        response = await client.post("/mcp", json=ADD, headers=bearer(tokens.token()))
    assert response.status_code == 200
    assert response.json()["result"]["structuredContent"] == {"result": 8}
    assert response.headers["ratelimit-policy"] == '"default";q=600;w=60'
    assert response.headers["ratelimit"] == '"default";r=599;t=60'
    assert response.headers["ratelimit-limit"] == "600"
    assert response.headers["ratelimit-remaining"] == "599"
    assert response.headers["ratelimit-reset"] == "60"
    assert "retry-after" not in response.headers


async def test_a_refusal_is_429_with_retry_after_and_a_problem(tokens: TokenFactory) -> None:
    token = tokens.token()
    async with running(make_service(rate_limit="2/minute").app) as client:
        await calls(client, token, 2)
        refused = await client.post("/mcp", json=ADD, headers=bearer(token))
    assert refused.status_code == 429
    retry = int(refused.headers["retry-after"])
    assert 55 <= retry <= 61
    assert refused.headers["ratelimit"] == f'"default";r=0;t={retry}'
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-reset"] == str(retry)
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    assert problem["status"] == 429
    assert problem["violated-policies"] == ["default"]
    assert problem["reason"] == "rate_limited"


async def test_several_limits_are_several_policies(tokens: TokenFactory) -> None:
    token = tokens.token()
    async with running(make_service(rate_limit="2/second;5/minute").app) as client:
        first = await client.post("/mcp", json=ADD, headers=bearer(token))
        await client.post("/mcp", json=ADD, headers=bearer(token))
        refused = await client.post("/mcp", json=ADD, headers=bearer(token))
    assert first.headers["ratelimit-policy"] == '"default-1s";q=2;w=1, "default-60s";q=5;w=60'
    assert first.headers["ratelimit"] == '"default-1s";r=1;t=1, "default-60s";r=4;t=60'
    assert first.headers["ratelimit-limit"] == "2"  # the tighter one
    assert refused.status_code == 429
    assert refused.json()["violated-policies"] == ["default-1s"]
    assert refused.headers["retry-after"] == "1"


async def test_a_refusal_by_one_limit_spends_nothing_of_the_others(tokens: TokenFactory) -> None:
    token = tokens.token()
    async with running(make_service(rate_limit="1/second;5/minute").app) as client:
        await calls(client, token, 3)  # one admitted, two refused by the per-second limit
        await asyncio.sleep(1.05)
        response = await client.post("/mcp", json=ADD, headers=bearer(token))
    assert response.status_code == 200
    assert '"default-60s";r=3;' in response.headers["ratelimit"]


async def test_the_cli_message_is_built_from_retry_after(tokens: TokenFactory) -> None:
    from mcp_service.client import describe_response

    token = tokens.token()
    async with running(make_service(rate_limit="1/minute").app) as client:
        await calls(client, token, 1)
        refused = await client.post("/mcp", json=ADD, headers=bearer(token))
    message = describe_response(refused.status_code, dict(refused.headers))
    assert re.fullmatch(r"rate limited, retry in \d+ s", message)


# Before authentication: the per-IP limit ------------------------------------------------------


async def test_the_ip_limit_refuses_before_any_token_is_verified(
    caplog: pytest.LogCaptureFixture,
) -> None:
    junk = {**MCP_HEADERS, "Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}
    caplog.set_level(logging.INFO, logger="mcp_service.auth")
    async with running(make_service(ip_rate_limit="3/minute").app) as client:
        responses = [await client.post("/mcp", json=ADD, headers=junk) for _ in range(8)]
    statuses = [response.status_code for response in responses]
    assert statuses == [401] * 3 + [429] * 5
    refused_by_auth = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert len(refused_by_auth) == 3


async def test_an_ip_refusal_has_retry_after_and_no_auth_challenge() -> None:
    async with running(make_service(ip_rate_limit="1/minute").app) as client:
        await client.post("/mcp", json=ADD, headers=MCP_HEADERS)
        refused = await client.post("/mcp", json=ADD, headers=MCP_HEADERS)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "www-authenticate" not in refused.headers
    assert refused.headers["ratelimit-policy"] == '"per-ip";q=1;w=60'


async def test_health_probes_are_never_ip_limited() -> None:
    async with running(make_service(ip_rate_limit="1/minute").app) as client:
        statuses = [(await client.get("/healthz")).status_code for _ in range(5)]
    assert statuses == [200] * 5


def forwarded(address: str) -> dict[str, str]:
    return {**MCP_HEADERS, "X-Forwarded-For": address}


async def test_x_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    async with running(make_service(ip_rate_limit="1/minute").app) as client:
        first = await client.post("/mcp", json=ADD, headers=forwarded("203.0.113.1"))
        second = await client.post("/mcp", json=ADD, headers=forwarded("203.0.113.2"))
    assert (first.status_code, second.status_code) == (401, 429)


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() -> None:
    service = make_service(ip_rate_limit="1/minute", trusted_proxies="127.0.0.0/8")
    async with running(service.app) as client:  # httpx's ASGI transport connects from 127.0.0.1
        first = await client.post("/mcp", json=ADD, headers=forwarded("203.0.113.1"))
        second = await client.post("/mcp", json=ADD, headers=forwarded("203.0.113.2"))
        again = await client.post("/mcp", json=ADD, headers=forwarded("203.0.113.1"))
    assert (first.status_code, second.status_code, again.status_code) == (401, 401, 429)


async def test_a_forged_entry_left_of_the_proxy_does_not_change_the_client() -> None:
    service = make_service(ip_rate_limit="1/minute", trusted_proxies="127.0.0.0/8")
    async with running(service.app) as client:
        first = await client.post("/mcp", json=ADD, headers=forwarded("203.0.113.1"))
        forged = await client.post("/mcp", json=ADD, headers=forwarded("9.9.9.9, 203.0.113.1"))
    assert (first.status_code, forged.status_code) == (401, 429)
