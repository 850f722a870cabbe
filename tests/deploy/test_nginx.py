"""deploy/nginx with a real nginx: the config is accepted, and in front of replicas it balances,
hides /metrics, routes /oauth2/token, and fails a POST over to another replica when the first
cannot be reached.

The committed upstream.conf is used with its compose addresses swapped for loopback ports
(tests/support/nginx.py, shared with the rolling-restart test in tests/faults), so the
parameters under test (max_fails, keepalive...) are the ones compose runs with. Replicas are
`mcp-service serve` processes in APP_ENV=local sharing one issuer key, so a token from any of
them verifies on all; every process is stopped by PID at the end.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.deploy.helpers import ROOT, require_tool
from tests.support.nginx import NGINX_DIR, nginx_dir, nginx_test
from tests.support.processes import free_port

LOCAL_CLIENT = ("mcp-local-client", "mcp-local-secret")
STARTUP_SECONDS = 30


def test_nginx_accepts_the_compose_configuration(tmp_path: Path) -> None:
    nginx = require_tool("nginx")
    for name in ("nginx.conf", "upstream.conf", "listen.conf"):
        shutil.copy(NGINX_DIR / name, tmp_path / name)
    result = nginx_test(nginx, tmp_path)
    assert result.returncode == 0, result.stderr


def test_nginx_accepts_the_configuration_with_loopback_upstreams(tmp_path: Path) -> None:
    nginx = require_tool("nginx")
    directory = nginx_dir(tmp_path / "conf", [18001, 18002, 18003], 18001, 18000)
    result = nginx_test(nginx, directory)
    assert result.returncode == 0, result.stderr


def test_nginx_refuses_a_broken_configuration(tmp_path: Path) -> None:
    nginx = require_tool("nginx")
    directory = nginx_dir(tmp_path / "conf", [18001, 18002, 18003], 18001, 18000)
    (directory / "upstream.conf").write_text("upstream mcp_replicas { server 127.0.0.1:1 }\n")
    assert nginx_test(nginx, directory).returncode != 0


# --- Live: replicas behind nginx -----------------------------------------------------------------


@dataclass
class Stack:
    url: str
    replicas: dict[int, subprocess.Popen[bytes]]
    env: dict[str, str]
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop_replica(self, port: int) -> None:
        process = self.replicas[port]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {STARTUP_SECONDS} s: {log.read_text()[-2000:]}")


def start(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    nginx = require_tool("nginx")
    workdir = tmp_path_factory.mktemp("nginx-stack")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "APP_ENV": "local",
        "LOCAL_ISSUER_KEY_FILE": str(workdir / "issuer-key.pem"),
        "PYTHONPATH": str(ROOT),
    }
    serve = [sys.executable, "-c", "import sys; from mcp_service.cli import main; sys.exit(main())"]
    processes: list[subprocess.Popen[bytes]] = []
    replicas: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for index in range(3):
            port = free_port()
            log = workdir / f"replica-{index}.log"
            process = start([*serve, "serve", "--port", str(port)], env, workdir, log)
            processes.append(process)
            replicas[port] = process
            # The first replica creates the shared key; the others must find it.
            wait_until_up(f"http://127.0.0.1:{port}/healthz", process, log)
        ports = list(replicas)
        listen = free_port()
        conf = nginx_dir(workdir / "nginx", ports, ports[0], listen)
        log = workdir / "nginx.log"
        process = start(
            [
                nginx,
                "-p",
                str(conf),
                "-c",
                str(conf / "nginx.conf"),
                "-e",
                "stderr",
                "-g",
                "daemon off;",
            ],
            env,
            workdir,
            log,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{listen}"
        wait_until_up(f"{url}/healthz", process, log)
        yield Stack(url, replicas, {**env, "MCP_URL": f"{url}/mcp"}, workdir, processes)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def token(stack: Stack) -> str:
    basic = base64.b64encode(":".join(LOCAL_CLIENT).encode()).decode()
    response = httpx.post(
        f"{stack.url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def call_add(stack: Stack, bearer: str, a: int, b: int) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "add", "arguments": {"a": a, "b": b}},
        },
        headers={
            "Authorization": f"Bearer {bearer}",
            "Accept": "application/json, text/event-stream",
        },
        timeout=10,
    )


def test_health_is_answered_through_nginx(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/%6Detrics", "//metrics"])
def test_metrics_are_not_served_through_nginx(stack: Stack, path: str) -> None:
    response = httpx.get(f"{stack.url}{path}", timeout=5)
    assert response.status_code == 404
    assert "upstream" not in response.headers.get("server", "")


def test_the_cli_calls_a_tool_through_nginx(stack: Stack) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from mcp_service.cli import main; sys.exit(main())",
            "call",
            "add",
            "a=5",
            "b=3",
        ],
        env=stack.env,
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 8


def test_a_call_without_a_token_gets_the_services_401_through_nginx(stack: Stack) -> None:
    response = httpx.post(f"{stack.url}/mcp", json={}, timeout=5)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_requests_are_spread_over_the_replicas(stack: Stack) -> None:
    # Each replica's access is logged by nginx with the upstream it chose.
    for _ in range(9):
        httpx.get(f"{stack.url}/healthz", timeout=5)
    log = (stack.workdir / "nginx.log").read_text()
    used = set(re.findall(r"upstream=127\.0\.0\.1:(\d+)", log))
    assert {str(port) for port in stack.replicas} <= used


def test_posts_fail_over_when_a_replica_is_unreachable(stack: Stack) -> None:
    bearer = token(stack)
    down = list(stack.replicas)[1]
    stack.stop_replica(down)
    answers = [call_add(stack, bearer, 5, index) for index in range(6)]
    assert [r.status_code for r in answers] == [200] * 6
    for index, response in enumerate(answers):
        assert f'"text":"{5 + index}"' in response.text.replace(" ", "")
    # ... and at least one of them reached a live replica only because nginx retried it there.
    log = (stack.workdir / "nginx.log").read_text()
    assert re.search(rf'"POST /mcp" 200 .* upstream=127\.0\.0\.1:{down}, 127\.0\.0\.1:\d+', log)


def test_the_image_health_check_command_reports_up_and_down(stack: Stack) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = json.loads(re.search(r"CMD (\[\"python\", \"-c\".*\])", dockerfile).group(1))
    live = next(port for port, p in stack.replicas.items() if p.poll() is None)
    for port, expected in ((live, 0), (free_port(), 1)):
        probe = command[2].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, timeout=30, check=False
        )
        assert (result.returncode != 0) is bool(expected), result.stderr
