"""The command line as a user meets it: configuration errors, and serve + token + call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from tests.support.processes import ServiceProcess, cli


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"APP_ENV": "production"}, "USER_POOL_ID"),
        ({"APP_ENV": "production"}, "COGNITO_REGION"),
        ({"APP_ENV": "production"}, "APP_CLIENT_ID"),
        ({"APP_ENV": "nonsense"}, "APP_ENV"),
        ({"TOKEN_USE": "refresh"}, "TOKEN_USE"),
        ({"COGNITO_JWKS_URL": "not a url"}, "COGNITO_JWKS_URL"),
        ({"TOOL_SCOPES": '{"nosuchtool": ["x"]}'}, "TOOL_SCOPES"),
    ],
)
def test_bad_settings_exit_2_naming_the_variable(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    result = cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"{variable}: ") for line in lines), result.stderr
    assert "Traceback" not in result.stderr


def test_each_problem_gets_its_own_line(tmp_path: Path) -> None:
    result = cli("serve", env={"APP_ENV": "production"}, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 3


def test_a_setting_in_dotenv_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TOKEN_USE=sometimes\n")
    result = cli("check-config", env={}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("TOKEN_USE: ")


def test_the_embedded_issuer_refuses_a_public_bind(tmp_path: Path) -> None:
    result = cli("serve", "--host", "0.0.0.0", env={}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("LOCAL_ISSUER_ALLOW_REMOTE: ")


def test_the_login_facade_without_its_settings_exits_2_naming_each(tmp_path: Path) -> None:
    env = {
        "APP_ENV": "staging",
        "COGNITO_REGION": "us-east-1",
        "USER_POOL_ID": "us-east-1_Abc123",
        "APP_CLIENT_ID": "client-a",
        "OAUTH_PROXY": "true",
        "OAUTH_PROXY_SIGNING_KEYS": "-----BEGIN PRIVATE KEY-----\nsecretbits\n"
        "-----END PRIVATE KEY-----",
    }
    result = cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 2
    named = [line.split(":")[0] for line in result.stderr.splitlines()]
    assert {"PUBLIC_BASE_URL", "COGNITO_DOMAIN", "OAUTH_PROXY_CLIENT_ID"} <= set(named)
    assert "OAUTH_PROXY_SIGNING_KEYS" in named
    assert "secretbits" not in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_accepts_good_settings_and_shows_no_secret(tmp_path: Path) -> None:
    env = {
        "APP_ENV": "production",
        "COGNITO_REGION": "us-east-1",
        "USER_POOL_ID": "us-east-1_Abc123",
        "APP_CLIENT_ID": "client-a,client-b",
        "OAUTH_CLIENT_SECRET": "very-secret-value",
    }
    result = cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "client-a" in result.stdout
    assert "very-secret-value" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with ServiceProcess({}, tmp_path_factory.mktemp("cli")) as service:
        yield service


def client_env(server: ServiceProcess, **extra: str) -> dict[str, str]:
    return {"MCP_URL": f"{server.url}/mcp", **extra}


def test_token_prints_a_token_from_the_embedded_issuer(local_server: ServiceProcess) -> None:
    result = cli("token", env=client_env(local_server), cwd=local_server.cwd)
    assert result.returncode == 0, result.stderr
    header = jwt.get_unverified_header(result.stdout.strip())
    assert header["alg"] == "RS256" and header["kid"]


def test_call_add_prints_the_sum(local_server: ServiceProcess) -> None:
    result = cli("call", "add", "a=5", "b=3", env=client_env(local_server), cwd=local_server.cwd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "8"


def test_call_get_user_info_prints_json(local_server: ServiceProcess) -> None:
    result = cli("call", "get_user_info", env=client_env(local_server), cwd=local_server.cwd)
    assert result.returncode == 0, result.stderr
    assert '"user": "mcp-local-client"' in result.stdout


def test_call_with_a_wrong_secret_prints_one_line_and_fails(local_server: ServiceProcess) -> None:
    env = client_env(local_server, OAUTH_CLIENT_SECRET="wrong")
    result = cli("call", "add", "a=1", "b=2", env=env, cwd=local_server.cwd)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "mcp-service: token request refused: invalid_client (client authentication failed)"
    ]


def test_call_refused_by_the_server_prints_the_reason(tmp_path: Path) -> None:
    with ServiceProcess({"REQUIRED_SCOPES": "mcp/admin"}, tmp_path) as server:
        env = client_env(server, OAUTH_SCOPES="mcp/tools")
        result = cli("call", "add", "a=1", "b=2", env=env, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("mcp-service: forbidden: insufficient_scope")
    assert "mcp/admin" in line


def test_call_to_an_unreachable_server_fails_in_one_line(tmp_path: Path) -> None:
    with ServiceProcess({}, tmp_path) as server:
        env = {"TOKEN_URL": f"{server.url}/oauth2/token", "MCP_URL": "http://127.0.0.1:9/mcp"}
        result = cli("call", "add", "a=1", "b=2", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot reach" in result.stderr


def test_call_with_a_malformed_argument_exits_2(local_server: ServiceProcess) -> None:
    result = cli("call", "add", "a5", env=client_env(local_server), cwd=local_server.cwd)
    assert result.returncode == 2
