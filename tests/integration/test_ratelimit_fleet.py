"""Rate limits across a fleet: `mcp-service serve` processes sharing one real Redis, and the
per-IP limit in front of verification, all over HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.pool import ADD_CALL, JWKS_PATH, bearer_headers, pool_env
from tests.support.processes import JwksServer, ServiceProcess
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

pytestmark = pytest.mark.redis

CALL = ADD_CALL


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with JwksServer(jwks_of(rsa_key()), JWKS_PATH).running() as server:
        yield server


headers = bearer_headers


async def post_all(urls: list[str], token: str, total: int) -> list[httpx.Response]:
    """`total` tool calls spread round-robin over `urls`, sixteen at a time."""
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> httpx.Response:
            async with gate:
                return await client.post(urls[i % len(urls)], json=CALL, headers=headers(token))

        return await asyncio.gather(*(one(i) for i in range(total)))


def test_four_replicas_share_one_budget_per_subject(
    tmp_path: Path, jwks: JwksServer, redis_url: str, key_prefix: str
) -> None:
    env = pool_env(
        jwks.url,
        REDIS_URL=redis_url,
        RATE_LIMIT="50/minute",
        RATE_LIMIT_KEY_PREFIX=key_prefix,
        IP_RATE_LIMIT="off",
    )
    replicas = [ServiceProcess(env, tmp_path) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(ServiceProcess.start, replicas))
    try:
        urls = [f"{replica.url}/mcp" for replica in replicas]
        tokens = TokenFactory()
        responses = asyncio.run(post_all(urls, tokens.token(sub="alice"), 200))
        others = [
            httpx.post(url, json=CALL, headers=headers(tokens.token(sub="bob")), timeout=30)
            for url in urls
        ]
    finally:
        for replica in replicas:
            replica.stop()

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) == {200, 429}, statuses
    assert 50 <= statuses[200] <= 51, statuses
    for response in responses:
        if response.status_code == 429:
            assert 1 <= int(response.headers["retry-after"]) <= 61
            assert response.json()["reason"] == "rate_limited"
    admitted_by = Counter(r.url.port for r in responses if r.status_code == 200)
    assert len(admitted_by) == 4, admitted_by  # every replica admitted some: one shared budget

    assert [r.status_code for r in others] == [200] * 4
    assert [r.headers["ratelimit-remaining"] for r in others] == ["49", "48", "47", "46"]


def test_the_ip_limit_refuses_a_junk_token_flood_before_verifying_it(
    tmp_path: Path, jwks: JwksServer
) -> None:
    env = pool_env(jwks.url, IP_RATE_LIMIT="10/minute", LOG_LEVEL="INFO")
    forged = TokenFactory().token(key=rsa_key("attacker"))  # well formed: costs an RSA verify
    with ServiceProcess(env, tmp_path) as service:
        responses = [
            httpx.post(f"{service.url}/mcp", json=CALL, headers=headers(forged), timeout=30)
            for _ in range(40)
        ]
        log = service.log()
    assert [r.status_code for r in responses] == [401] * 10 + [429] * 30
    assert all("www-authenticate" not in r.headers for r in responses[10:])
    verified = [json.loads(line) for line in log.splitlines() if '"request refused"' in line]
    assert len(verified) == 10  # one verification (and refusal) per 401, none for a 429
    assert {entry["reason"] for entry in verified} == {"bad_signature"}
