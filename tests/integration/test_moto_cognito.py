"""Against a Cognito emulator nobody here wrote: moto's server mode on loopback.

moto creates the user pool, app client and user, and signs the tokens; the service fetches
moto's JWKS through COGNITO_JWKS_URL and verifies them with the same rules as Cognito's.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastmcp import Client

from tests.support.processes import ServiceProcess, free_port

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("moto_server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def pool(moto: str) -> dict[str, Any]:
    idp = boto3.client(
        "cognito-idp",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pool_id = idp.create_user_pool(PoolName="mcp-test")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="mcp-client",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(UserPoolId=pool_id, Username="carol", TemporaryPassword="Temp-pass-1!")
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username="carol", Password="Real-pass-1!", Permanent=True
    )
    sub = next(
        attr["Value"]
        for attr in idp.admin_get_user(UserPoolId=pool_id, Username="carol")["UserAttributes"]
        if attr["Name"] == "sub"
    )
    tokens = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "carol", "PASSWORD": "Real-pass-1!"},
    )["AuthenticationResult"]
    return {
        "pool_id": pool_id,
        "client_id": client_id,
        "sub": sub,
        "access": tokens["AccessToken"],
        "id": tokens["IdToken"],
        "jwks_url": f"{moto}/{pool_id}/.well-known/jwks.json",
    }


@pytest.fixture(scope="module")
def server(pool: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "APP_ENV": "test",
        "COGNITO_REGION": REGION,
        "USER_POOL_ID": pool["pool_id"],
        "APP_CLIENT_ID": pool["client_id"],
        "COGNITO_JWKS_URL": pool["jwks_url"],
    }
    with ServiceProcess(env, Path(tmp_path_factory.mktemp("serve"))) as service:
        yield service.url


async def test_a_moto_access_token_reaches_get_user_info(server: str, pool: dict[str, Any]) -> None:
    async with Client(f"{server}/mcp", auth=pool["access"]) as client:
        result = await client.call_tool("get_user_info", {})
    info = result.structured_content
    assert info is not None
    assert info["user"] == pool["sub"]
    assert info["username"] == "carol"
    assert info["client_id"] == pool["client_id"]
    assert info["token_use"] == "access"


async def test_a_moto_access_token_calls_add(server: str, pool: dict[str, Any]) -> None:
    async with Client(f"{server}/mcp", auth=pool["access"], mode="legacy") as client:
        result = await client.call_tool("add", {"a": 5, "b": 3})
    assert result.data == 8


def list_tools(server: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{server}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {token}",
        },
    )


def test_a_moto_id_token_is_refused_by_default(server: str, pool: dict[str, Any]) -> None:
    response = list_tools(server, pool["id"])
    assert response.status_code == 401
    assert response.json()["reason"] == "wrong_token_use"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_moto_access_token_for_another_pool_is_refused(
    moto: str, pool: dict[str, Any], tmp_path: Path
) -> None:
    env = {
        "APP_ENV": "test",
        "COGNITO_REGION": REGION,
        "USER_POOL_ID": f"{REGION}_SomeOtherPool",
        "APP_CLIENT_ID": pool["client_id"],
        "COGNITO_JWKS_URL": pool["jwks_url"],
    }
    with ServiceProcess(env, tmp_path) as service:
        response = list_tools(service.url, pool["access"])
    assert response.status_code == 401
    assert response.json()["reason"] == "wrong_issuer"
