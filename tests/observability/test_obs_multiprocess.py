"""Several worker processes: one scrape reports the sum over all of them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from observability.metrics import multiprocess_registry

WORKER = textwrap.dedent(
    """
    import sys
    from observability.metrics import Metrics

    requests, ready = int(sys.argv[1]), sys.argv[2] == "ready"
    metrics = Metrics(tools=["add"])
    for _ in range(requests):
        metrics.http_request("POST", "/mcp", 200, 0.003)
        metrics.tool_call("add", "ok", 0.001)
    metrics.auth_outcome("ok")
    metrics.readiness(ready, {"jwks": ready})
    """
)


def value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def run_worker(directory: Path, requests: int, state: str) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run(
        [sys.executable, "-c", WORKER, str(requests), state], env=env, check=True, timeout=60
    )


def test_samples_of_two_worker_processes_are_aggregated(tmp_path: Path) -> None:
    run_worker(tmp_path, 3, "ready")
    run_worker(tmp_path, 4, "unready")
    pids = {name.rsplit("_", 1)[-1] for name in os.listdir(tmp_path) if name.startswith("counter")}
    assert len(pids) == 2  # two processes, each with files of its own

    from prometheus_client import generate_latest

    text = generate_latest(multiprocess_registry(str(tmp_path))).decode()
    count = "mcp_http_request_duration_seconds_count"
    assert value(text, count, method="POST", route="/mcp", status="200") == 7
    assert value(text, "mcp_tool_call_duration_seconds_count", tool="add", outcome="ok") == 7
    assert value(text, "mcp_auth_outcomes_total", outcome="ok") == 2
    # A replica is ready only if every worker is (the gauge keeps the minimum of live ones).
    assert value(text, "mcp_ready") == 0
    assert value(text, "mcp_build_info") == 1


def test_serve_with_two_workers_reports_every_worker_in_each_scrape(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    server = serve("--workers", "2", env={"TMPDIR": str(scratch)})
    for _ in range(30):
        with httpx.Client() as fresh:  # a new connection each time, so both workers get some
            assert fresh.get(f"{server.url}/healthz").status_code == 200
    [directory] = [p for p in scratch.iterdir() if p.name.startswith("mcp-metrics-")]
    pids = {p.name.rsplit("_", 1)[-1] for p in directory.iterdir() if p.name.endswith(".db")}
    assert len(pids) == 2

    counts = set()
    for _ in range(10):
        with httpx.Client() as fresh:
            text = fresh.get(f"{server.url}/metrics").text
        counts.add(value(text, "mcp_http_request_duration_seconds_count", route="/healthz"))
    assert counts == {30.0}  # whichever worker answered, it reported both workers' requests

    from tests.observability.obs_support import stop

    stop(server.process)
    assert not directory.exists()  # the samples of this run do not outlive it


def test_metrics_port_serves_metrics_apart_from_the_service_port(
    serve: Callable[..., Any],
) -> None:
    from tests.support.processes import free_port

    port = free_port()
    server = serve(env={"METRICS_PORT": str(port)})
    httpx.get(f"{server.url}/healthz")
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert metrics.status_code == 200
    assert value(metrics.text, "mcp_http_request_duration_seconds_count", route="/healthz") == 1
    assert httpx.get(f"{server.url}/metrics").status_code == 401  # no longer a public route


def test_metrics_port_with_two_workers_is_served_from_the_aggregate(
    serve: Callable[..., Any],
) -> None:
    from tests.support.processes import free_port

    port = free_port()
    server = serve("--workers", "2", env={"METRICS_PORT": str(port)})
    for _ in range(12):
        with httpx.Client() as fresh:
            fresh.get(f"{server.url}/healthz")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert value(text, "mcp_http_request_duration_seconds_count", route="/healthz") == 12


def test_a_metrics_port_equal_to_the_service_port_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    from tests.observability.obs_support import MCP_SERVICE
    from tests.support.processes import free_port

    port = str(free_port())
    env = {**os.environ, "METRICS_PORT": port, "APP_ENV": "local"}
    env["LOCAL_ISSUER_KEY_FILE"] = str(tmp_path / "key.pem")
    done = subprocess.run(
        [MCP_SERVICE, "serve", "--port", port],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("METRICS_PORT:")


def test_a_metrics_port_already_taken_fails_with_one_line(tmp_path: Path) -> None:
    import socket

    from tests.observability.obs_support import MCP_SERVICE
    from tests.support.processes import free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        env = {**os.environ, "METRICS_PORT": str(taken.getsockname()[1]), "APP_ENV": "local"}
        env["LOCAL_ISSUER_KEY_FILE"] = str(tmp_path / "key.pem")
        done = subprocess.run(
            [MCP_SERVICE, "serve", "--port", str(free_port())],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert done.stderr.startswith("mcp-service: cannot serve metrics on port")
    assert len(done.stderr.splitlines()) == 1
