"""The MCP Inspector's web UI (npm `@modelcontextprotocol/inspector`, 2.x) on loopback, for a
person in chromium to drive (tests/support/inspector_ui.js). `.ci/run` installs it into
.ci/node beside playwright-core and Node 22; without it the tests skip, under CI=true fail."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.chromium import DEFAULT_PLAYWRIGHT, _missing, chromium_tools, run_script
from tests.support.processes import free_port, terminate

DRIVER = Path(__file__).with_name("inspector_ui.js")
DEFAULT_INSPECTOR = DEFAULT_PLAYWRIGHT.parent / "@modelcontextprotocol" / "inspector"
LAUNCHER = Path("clients") / "launcher" / "build" / "index.js"
NODE_AT_LEAST = (22, 19)  # the Inspector's engines field


def inspector_tools() -> tuple[str, str, Path, Path]:
    """node (22.19 or newer), chromium, playwright-core and the Inspector's launcher script;
    skip (fail in CI) without them."""
    node, chromium, playwright = chromium_tools()
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    found = re.match(r"v(\d+)\.(\d+)", version)
    if found is None or (int(found[1]), int(found[2])) < NODE_AT_LEAST:
        _missing(f"the MCP Inspector needs Node 22.19 or newer, {node} is {version.strip()}")
    launcher = Path(os.environ.get("MCP_INSPECTOR_DIR", DEFAULT_INSPECTOR)) / LAUNCHER
    if not launcher.exists():
        _missing(f"the MCP Inspector is not installed ({launcher})")
    return node, chromium, playwright, launcher


class InspectorWeb:
    """`mcp-inspector --web` on free loopback ports with a fresh home (no catalog, no stored
    tokens), its own API token, no browser opened; stopped by its process group."""

    def __init__(self, workdir: Path) -> None:
        self.node, self.chromium, self.playwright, self.launcher = inspector_tools()
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.workdir = workdir
        self.log_path = workdir / "inspector.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> InspectorWeb:
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),  # its catalog (~/.mcp-inspector/mcp.json) starts empty
            "MCP_STORAGE_DIR": str(self.workdir / "storage"),  # OAuth state and tokens
            "MCP_INSPECTOR_SECRET_STORE": "memory",  # no keychain here
            "HOST": "127.0.0.1",
            "CLIENT_PORT": str(self.port),
            "MCP_SANDBOX_PORT": str(free_port()),
            "MCP_APP_ORIGIN_PORT": str(free_port()),
            "MCP_INSPECTOR_API_TOKEN": self.token,
            "MCP_AUTO_OPEN_ENABLED": "false",
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.node, str(self.launcher), "--web"],
            env=env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Inspector exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.origin, timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the Inspector did not come up:\n{self.log()}")

    def stop(self, grace: float = 10) -> None:
        terminate(self.process, grace, group=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def person(
        self, server: str, username: str, password: str, artifacts: Path, seconds: float = 60
    ) -> Any:
        """What a person saw in the Inspector's page (inspector_ui.js): connecting to `server`,
        signing in as `username`, listing the tools and calling `add` and `get_user_info`."""
        job = {
            "playwright": str(self.playwright),
            "chromium": self.chromium,
            "inspector": f"{self.origin}/?MCP_INSPECTOR_API_TOKEN={self.token}",
            "server": server,
            "username": username,
            "password": password,
            "artifacts": str(artifacts),
        }
        return await run_script(self.node, DRIVER, job, seconds)

    def __enter__(self) -> InspectorWeb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
