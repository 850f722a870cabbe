"""The test pool as `mcp-service serve` processes see it: their settings, and one tool call."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.tokens import CLIENT_ID, POOL_ID, REGION

JWKS_PATH = f"/{POOL_ID}/.well-known/jwks.json"
ADD_CALL: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 5, "b": 3}},
}


def pool_env(jwks_url: str, **extra: str) -> dict[str, str]:
    """Settings for a replica that verifies the test pool's tokens against `jwks_url`."""
    return {
        "APP_ENV": "test",
        "COGNITO_REGION": REGION,
        "USER_POOL_ID": POOL_ID,
        "APP_CLIENT_ID": CLIENT_ID,
        "COGNITO_JWKS_URL": jwks_url,
        **extra,
    }


def bearer_headers(token: str) -> dict[str, str]:
    return {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}


def call_add(base_url: str, token: str, timeout: float = 30) -> httpx.Response:
    """POST a bare stateless `tools/call` of `add` to BASE_URL/mcp."""
    return httpx.post(
        f"{base_url}/mcp", json=ADD_CALL, headers=bearer_headers(token), timeout=timeout
    )
