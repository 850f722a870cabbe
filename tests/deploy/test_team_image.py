"""The container pattern for a team's own server (examples/team-server): an image FROM this
project's image that adds the team's package and sets MCP_APP, shown in compose, linted like
the main Dockerfile (tests/deploy/test_dockerfile.py runs hadolint on both), and the package
served from an environment without dev tools."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from mcp_service.loader import load_server
from tests.deploy.helpers import ROOT, require_tool
from tests.deploy.test_dockerfile import parse
from tests.support.processes import ServiceProcess

EXAMPLE = ROOT / "examples" / "team-server"
INSTRUCTIONS = parse((EXAMPLE / "Dockerfile").read_text())
SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
BASE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OVERRIDE = yaml.safe_load((EXAMPLE / "compose.yaml").read_text())
REPLICAS = ["replica-1", "replica-2", "replica-3"]


def build_args() -> dict[str, str]:
    args = [i.arguments for i in INSTRUCTIONS if i.keyword == "ARG"]
    return dict(arg.split("=", 1) for arg in args if "=" in arg)


def test_the_team_image_is_built_from_this_projects_image() -> None:
    final = [i.arguments for i in INSTRUCTIONS if i.keyword == "FROM"][-1]
    assert final.split()[0] == "${BASE_IMAGE}"
    assert build_args()["BASE_IMAGE"] == BASE["services"]["replica-1"]["image"]


def test_the_team_image_sets_an_mcp_app_that_loads_and_runs_unprivileged() -> None:
    envs = " ".join(i.arguments for i in INSTRUCTIONS if i.keyword == "ENV")
    [app] = re.findall(r"MCP_APP=(\S+)", envs)
    assert load_server(app).name == "team-server"
    users = [i.arguments for i in INSTRUCTIONS if i.keyword == "USER"]
    assert users[-1] == "10001:10001"


def test_the_compose_override_is_valid_and_puts_the_team_image_on_every_replica() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(OVERRIDE)
    services: dict[str, Any] = OVERRIDE["services"]
    assert sorted(services) == REPLICAS
    for name in REPLICAS:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]) == EXAMPLE / "Dockerfile"
        assert build["args"]["BASE_IMAGE"] == BASE["services"][name]["image"]
        assert set(json.loads(services[name]["environment"]["TOOL_GROUPS"])) <= {"deploy"}


def test_the_team_package_is_served_from_an_environment_without_dev_tools(
    tmp_path: Path,
) -> None:
    uv = os.environ.get("UV") or require_tool("uv")
    venv = tmp_path / "venv"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT"}
    }
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    steps = [
        [uv, "sync", "--locked", "--no-dev", "--no-editable", "--python", sys.executable],
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(EXAMPLE)],
    ]
    for step in steps:
        done = subprocess.run(step, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert not (venv / "bin" / "pytest").exists()
    server = ServiceProcess(
        {"APP_ENV": "local", "MCP_APP": "team_server.server:create_server"},
        tmp_path,
        command=[str(venv / "bin" / "mcp-service")],
    )
    with server:
        token = httpx.post(
            f"{server.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("mcp-local-client", "mcp-local-secret"),
            timeout=10,
        ).json()["access_token"]
        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "find_runbook", "arguments": {"topic": "cache"}},
        }
        headers = {
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {token}",
        }
        response = httpx.post(f"{server.url}/mcp", json=call, headers=headers, timeout=10)
    assert response.status_code == 200, server.log()
    assert response.json()["result"]["structuredContent"] == {"result": ["cache-flush"]}


@pytest.mark.parametrize("path", ["tests/x", ".env", "team_server/__pycache__/x.pyc"])
def test_the_team_build_context_leaves_out_local_files(path: str) -> None:
    from tests.deploy.test_dockerfile import _ignored

    patterns = [
        line.strip()
        for line in (EXAMPLE / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert _ignored(path, patterns)
