"""Helpers shared by the observability tests (their fixtures are in conftest.py here)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

CLIENT_ID = "obs-test-client"
CLIENT_SECRET = "obs-test-secret-0123456789"
MCP_SERVICE = str(Path(sys.executable).with_name("mcp-service"))


def require_tool(name: str) -> str:
    """The tool's path; in CI a missing tool fails the test, elsewhere it skips it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def pool_settings(jwks_url: str) -> dict[str, Any]:
    """A (fake) real user pool whose JWKS is at `jwks_url`."""
    return {
        "app_env": "development",
        "cognito_region": "us-east-1",
        "user_pool_id": "us-east-1_ObsTest01",
        "app_client_id": ("obs-client",),
        "cognito_jwks_url": jwks_url,
        "jwks_timeout_seconds": 5.0,
    }


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server did not become ready: {log_path.read_text()}")


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
