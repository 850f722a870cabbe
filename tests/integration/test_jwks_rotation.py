"""The JWKS endpoint goes down, then comes back with a rotated key set."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.processes import JwksServer, ServiceProcess
from tests.support.tokens import CLIENT_ID, POOL_ID, REGION, TokenFactory, jwks_of, rsa_key

CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 5, "b": 3}},
}


def call(url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/mcp",
        json=CALL,
        headers={
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {token}",
        },
        timeout=30,
    )


def test_cached_keys_serve_through_an_outage_and_rotated_keys_work_after(tmp_path: Path) -> None:
    old, new = TokenFactory(), TokenFactory(key=rsa_key("rotated"))
    jwks = JwksServer(jwks_of(rsa_key()), f"/{POOL_ID}/.well-known/jwks.json")
    env = {
        "APP_ENV": "test",
        "COGNITO_REGION": REGION,
        "USER_POOL_ID": POOL_ID,
        "APP_CLIENT_ID": CLIENT_ID,
        "COGNITO_JWKS_URL": jwks.url,
        "JWKS_KID_MISS_COOLDOWN_SECONDS": "1",
        "JWKS_MAX_AGE_SECONDS": "10",  # stale during the test: refreshes are tried and fail
    }
    with jwks.running(), ServiceProcess(env, tmp_path) as server:
        assert call(server.url, old.token()).status_code == 200
        jwks.stop()

        for _ in range(10):  # new tokens under the cached key keep working
            assert call(server.url, old.token()).status_code == 200
        early = call(server.url, new.token())  # a kid we cannot look up yet: retry later
        assert early.status_code == 503
        assert early.headers["retry-after"]

        jwks.document = jwks_of(rsa_key(), rsa_key("rotated"))
        jwks.start()
        time.sleep(1.1)  # the kid-miss window the early call opened
        response = call(server.url, new.token())
        assert response.status_code == 200, response.text
        assert call(server.url, old.token()).status_code == 200
