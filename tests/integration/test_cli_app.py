"""`serve --app` / MCP_APP as an operator meets them: one line and exit 2 for a bad one, the flag
over the setting, and a server of one's own served by several workers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.pool import JWKS_PATH, bearer_headers, pool_env
from tests.support.processes import JwksServer, ServiceProcess, cli
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.support.own_server:create_server"
ON_PATH = {"PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize(  # every form, in process: tests/unit/test_loader.py
    ("command", "spec"),
    [("serve", "no_such_module_here:mcp"), ("check-config", "tests.support.own_server:nothing")],
)
def test_a_bad_mcp_app_exits_2_with_one_line_naming_it(
    tmp_path: Path, command: str, spec: str
) -> None:
    result = cli(command, env={**ON_PATH, "MCP_APP": spec}, cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("MCP_APP: ")


def test_the_app_flag_wins_over_mcp_app(tmp_path: Path) -> None:
    env = {**ON_PATH, "MCP_APP": "no_such_module_here:mcp"}
    result = cli("check-config", "--app", APP, env=env, cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["mcp_app"] == APP
    assert "lookup" in summary["tools"]


def test_a_tool_group_naming_no_tool_of_the_server_exits_2_naming_setting_and_tool(
    tmp_path: Path,
) -> None:
    env = {**ON_PATH, "MCP_APP": APP, "TOOL_GROUPS": '{"deploy": ["ops"], "deplyo": ["ops"]}'}
    result = cli("check-config", env=env, cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("TOOL_GROUPS: 'deplyo' is not a tool of the served server")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = pool_env(jwks.url, **ON_PATH)
    cwd = tmp_path_factory.mktemp("workers")
    args = ("--workers", "2", "--app", APP)
    with jwks.running(), ServiceProcess(env, cwd, args=args) as service:
        yield service


def test_every_worker_serves_the_app_the_flag_names(two_workers: ServiceProcess) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "shout"}}
    message["params"]["arguments"] = {"text": "hi"}  # type: ignore[index]
    headers = bearer_headers(TokenFactory().token())
    answers = set()
    for _ in range(12):  # new connections: the kernel spreads them over both workers
        with httpx.Client(timeout=30) as client:
            response = client.post(f"{two_workers.url}/mcp", json=message, headers=headers)
        assert response.status_code == 200, response.text
        answers.add(json.dumps(response.json()["result"]["structuredContent"]))
    assert answers == {json.dumps({"text": "HI", "length": 2})}
