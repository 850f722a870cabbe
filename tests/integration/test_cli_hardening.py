"""The command line against inputs a careful operator would not type, or an attacker would:
addresses that only look like loopback, identifiers and schemes spelled otherwise, secrets in
values that fail validation or connections that fail."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from mcp_service.settings import SettingsError, load_settings
from tests.support.processes import SETTING_NAMES, cli, free_port

PRODUCTION = {
    "APP_ENV": "production",
    "COGNITO_REGION": "us-east-1",
    "USER_POOL_ID": "us-east-1_Abc123",
    "APP_CLIENT_ID": "client-a",
    "PUBLIC_BASE_URL": "https://mcp.example.com",
}


# The embedded issuer binds loopback only -----------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "check-config"])
def test_the_embedded_issuer_refuses_an_empty_host(tmp_path: Path, command: str) -> None:
    """asyncio binds every interface for an empty host."""
    result = cli(command, "--host", "", env={}, cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("LOCAL_ISSUER_ALLOW_REMOTE: ")


@pytest.mark.parametrize("host", ["", " ", "0.0.0.0", "::", "[::]", "0", "127.0.0.1.example"])
def test_the_embedded_issuer_refuses_any_host_but_an_explicit_loopback_one(host: str) -> None:
    problems = load_settings(_env_file=None).serve_problems(host)
    assert [variable for variable, _ in problems] == ["LOCAL_ISSUER_ALLOW_REMOTE"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_an_explicit_loopback_host_is_accepted(host: str) -> None:
    assert load_settings(_env_file=None).serve_problems(host) == []


# Spellings a check must not walk past -------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["HTTP://keys.example.com/jwks.json", "Http://keys.example.com/jwks.json"]
)
def test_production_refuses_a_plain_http_jwks_url_however_its_scheme_is_spelled(
    tmp_path: Path, url: str
) -> None:
    result = cli("check-config", env={**PRODUCTION, "COGNITO_JWKS_URL": url}, cwd=tmp_path)
    assert result.returncode == 2
    assert any(line.startswith("COGNITO_JWKS_URL: ") for line in result.stderr.splitlines())


def test_production_without_a_public_base_url_is_served_with_a_warning(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "PUBLIC_BASE_URL"}
    result = cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "PUBLIC_BASE_URL" in result.stderr


@pytest.mark.redis
@pytest.mark.parametrize("subject", ["user ", " user", "user\t", "ünïcode"])
def test_revoke_keeps_the_subject_exactly_as_given(
    tmp_path: Path, redis_url: str, redis_prefix: str, subject: str
) -> None:
    env = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": redis_prefix}
    assert cli("revoke", "--sub", subject, env=env, cwd=tmp_path).returncode == 0
    listed = cli("revoke", "--list", env=env, cwd=tmp_path)
    assert [json.loads(line)["value"] for line in listed.stdout.splitlines()] == [subject]


@pytest.mark.parametrize("value", ["", "   "])
def test_revoke_refuses_an_empty_identifier(tmp_path: Path, value: str) -> None:
    result = cli("revoke", "--jti", value, env={"REDIS_URL": "redis://127.0.0.1:1"}, cwd=tmp_path)
    assert result.returncode == 2


# No secret in any message -------------------------------------------------------------------

SECRET = "S3cr#tP4ss/w0rd?x"  # every character a URL parser could trip over


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as sock:  # nothing listens there
        sock.bind(("127.0.0.1", port))
    return port


@pytest.mark.parametrize(
    "env",
    [
        {"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:6379/0"},
        {"REDIS_URL": f"redis://user:{SECRET}@127.0.0.1:6379/notadb"},
        {"REDIS_URL": f"rediss://:{SECRET}@"},
        {"REDIS_URL": f"http://:{SECRET}@127.0.0.1:6379"},
        {"REDIS_URL": f"redis://127.0.0.1:6379/0?password={SECRET}&db=x"},
        {"COGNITO_JWKS_URL": f"ftp://u:{SECRET}@keys.example.com/jwks.json"},
        {"TOKEN_URL": f"notaurl:{SECRET}"},
        {"MCP_URL": f"https://u:{SECRET}@[::1/mcp"},
        {"TOKEN_CACHE_SECRET": SECRET},
        {"TOKEN_CACHE_SECRET": f"{'a' * 40},{SECRET}"},
        {"OAUTH_CLIENT_SECRET": SECRET, "LOCAL_ISSUER_ALLOW_REMOTE": "maybe"},
        {"CORS_ALLOW_ORIGINS": f"https://u:{SECRET}@[bad"},
        {"PUBLIC_BASE_URL": f"https://u:{SECRET}@mcp.example.com:99999"},
    ],
    ids=lambda env: next(iter(env)),
)
def test_no_settings_error_carries_a_secret(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        settings = load_settings(_env_file=None)
    except SettingsError as exc:
        messages = [f"{variable}: {message}" for variable, message in exc.problems]
    else:
        messages = [f"{v}: {m}" for v, m in settings.serve_problems() + settings.client_problems()]
    assert messages, "the value should have been refused"
    text = "\n".join(messages)
    assert SECRET not in text
    assert SECRET.split("#")[0] not in text  # nor the part before a character that broke it


def test_a_refused_redis_url_is_printed_by_name_not_by_value(tmp_path: Path) -> None:
    result = cli(
        "check-config", env={"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:6379/0"}, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.startswith("REDIS_URL: ")
    assert SECRET.split("#")[0] not in result.stdout + result.stderr


def test_a_redis_that_refuses_the_password_is_reported_without_it(
    tmp_path: Path, redis_url: str
) -> None:
    url = redis_url.replace("redis://", f"redis://nobody:{SECRET.replace('#', '%23')}@", 1)
    url = url.replace("?", "%3F").replace("/w0rd", "%2Fw0rd")
    result = cli("revoke", "--list", env={"REDIS_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    assert SECRET.split("#")[0] not in result.stdout + result.stderr


def test_an_unreachable_redis_is_reported_without_its_password(tmp_path: Path) -> None:
    url = f"redis://:{SECRET.replace('#', '%23').replace('/', '%2F').replace('?', '%3F')}"
    url += f"@127.0.0.1:{_closed_port()}/0"
    result = cli("revoke", "--jti", "x", env={"REDIS_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    assert SECRET.split("#")[0] not in result.stdout + result.stderr


# Bounds that contradict each other --------------------------------------------------------------


def test_a_header_bound_with_no_room_for_a_token_is_refused_at_start(tmp_path: Path) -> None:
    env = {"MAX_TOKEN_BYTES": "16384", "MAX_HEADER_BYTES": "16384"}
    result = cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("MAX_HEADER_BYTES: ")


def test_more_connections_than_descriptors_is_refused_at_start(tmp_path: Path) -> None:
    result = cli("check-config", env={"MAX_CONNECTIONS": "1000000"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("MAX_CONNECTIONS: ")
