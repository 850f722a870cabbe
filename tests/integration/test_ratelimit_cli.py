"""`mcp-service call` against a rate limit: one readable line and exit status 1 on a 429."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.processes import ServiceProcess, cli


def test_call_prints_rate_limited_with_the_retry_delay_and_exits_1(tmp_path: Path) -> None:
    with ServiceProcess({"RATE_LIMIT": "3/minute"}, tmp_path) as server:
        env = {"MCP_URL": f"{server.url}/mcp"}
        first = cli("call", "add", "a=5", "b=3", env=env, cwd=tmp_path)
        results = [cli("call", "add", "a=5", "b=3", env=env, cwd=tmp_path) for _ in range(3)]
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "8"
    refused = next(result for result in results if result.returncode != 0)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    found = re.fullmatch(r"mcp-service: rate limited, retry in (\d+) s", line)
    assert found is not None, line
    assert 1 <= int(found.group(1)) <= 61
