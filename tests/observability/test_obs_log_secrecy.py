"""A scripted session against a real server: its logs are JSON lines and hold no token and no
secret, wherever the caller put them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from mcp_service.issuer import LocalIssuer, load_or_create_key
from mcp_service.settings import Settings
from tests.observability.obs_support import CLIENT_ID, MCP_SERVICE, stop

CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 2, "b": 3}},
}
ACCEPT = "application/json, text/event-stream"


def mint(key_file: Path, **claims: Any) -> str:
    """A token signed with the server's own dev key (expired, foreign, ...)."""
    settings = Settings(_env_file=None, app_env="local")  # type: ignore[call-arg]
    issuer = LocalIssuer(
        load_or_create_key(key_file),
        issuer=settings.issuer,
        client_id=CLIENT_ID,
        client_secret="unused",
        scopes=["mcp/tools"],
    )
    return issuer.issue(**claims)


def tampered(token: str) -> str:
    head, body, signature = token.split(".")
    flipped = ("A" if signature[5] != "A" else "B") + signature[6:]
    return f"{head}.{body}.{signature[:5]}{flipped}"


def test_a_full_session_leaves_no_token_or_secret_in_the_logs(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    secret = "sx-" + secrets.token_urlsafe(24)
    env = {"OAUTH_CLIENT_SECRET": secret, "ACCESS_LOG": "true", "LOG_LEVEL": "DEBUG"}
    server = serve(env=env)
    cli_env = {
        **os.environ,
        "APP_ENV": "local",
        "OAUTH_CLIENT_ID": CLIENT_ID,
        "OAUTH_CLIENT_SECRET": secret,
        "TOKEN_URL": f"{server.url}/oauth2/token",
        "MCP_URL": f"{server.url}/mcp",
        "LOCAL_ISSUER_KEY_FILE": str(tmp_path / "issuer-key.pem"),
    }

    def cli(*args: str) -> str:
        done = subprocess.run(
            [MCP_SERVICE, *args], env=cli_env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    issued = cli("token")
    assert cli("call", "add", "a=5", "b=3") == "8"  # the CLI fetches a token of its own

    key_file = tmp_path / "issuer-key.pem"
    expired = mint(key_file, exp=1_000_000, iat=999_000)
    foreign = mint(key_file, iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other")
    forged = tampered(issued)
    used = [issued, expired, foreign, forged]

    with httpx.Client(base_url=server.url, headers={"Accept": ACCEPT}) as http:
        for token in used:
            http.post("/mcp", json=CALL, headers={"Authorization": f"Bearer {token}"})
        assert http.post("/mcp", json=CALL).status_code == 401
        # Tokens where they do not belong: a request id, a query string, a path, a bad scheme.
        http.post("/mcp", json=CALL, headers={"X-Request-Id": issued})
        http.get(f"/mcp?access_token={issued}")
        http.get(f"/{issued}")
        http.post("/mcp", json=CALL, headers={"Authorization": f"Token {issued}"})
        refused = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, secret + "-wrong"),
        )
        assert refused.status_code == 401
        ok = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, secret),
        )
        used.append(ok.json()["access_token"])
    stop(server.process)

    text = server.logs()
    lines = [json.loads(line) for line in text.splitlines()]
    assert all({"timestamp", "level", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line.get("logger") == "mcp_service.access"]
    assert len(access) >= 12  # the session was logged: the checks below are not vacuous
    reasons = {line.get("reason") for line in access}
    assert {"expired", "wrong_issuer", "bad_signature", "missing_token"} <= reasons

    for token in used:
        header, payload, signature = token.split(".")
        assert token not in text
        assert f"{header}.{payload[:16]}" not in text  # not even a token cut short
        assert signature[:16] not in text
    assert secret not in text
