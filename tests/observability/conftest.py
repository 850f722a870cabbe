"""Fixtures for the observability tests: the service in process (its lifespan driven by
tests.support.asgi.running) and as a real `mcp-service serve` process on a free loopback port,
stopped by PID."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcp_service.app import Service, build_service
from mcp_service.settings import Settings
from tests.observability.obs_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    MCP_SERVICE,
    pool_settings,
    stop,
    wait_ready,
)
from tests.support.asgi import running
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tools: needs an external tool (promtool, prometheus)")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for the embedded local issuer with a key of this test's own."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "app_env": "local",
            "user_pool_id": "",
            "redis_url": "",
            "local_issuer_key_file": tmp_path / "issuer-key.pem",
            "oauth_client_id": CLIENT_ID,
            "oauth_client_secret": CLIENT_SECRET,
            "readiness_interval_seconds": 3600,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def unreachable_pool() -> dict[str, Any]:
    """Settings whose JWKS endpoint refuses connections (nothing listens on the port)."""
    return pool_settings(f"http://127.0.0.1:{free_port()}/.well-known/jwks.json")


@dataclass
class InProcess:
    service: Service
    client: httpx.AsyncClient

    async def token(self) -> str:
        issuer = self.service.issuer
        assert issuer is not None
        return issuer.issue()

    async def call_tool(self, token: str | None, name: str, **arguments: Any) -> httpx.Response:
        headers = {"Accept": "application/json, text/event-stream"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }
        return await self.client.post("/mcp", json=body, headers=headers)

    async def metrics_text(self) -> str:
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        return response.text


@pytest.fixture
def in_process(
    make_settings: Callable[..., Settings],
) -> Callable[..., Any]:
    """`async with in_process(**settings) as svc:` the service app driven through httpx."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[InProcess]:
        service = build_service(make_settings(**overrides))
        async with running(service.app) as client:
            yield InProcess(service, client)

    return start


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `mcp-service serve` on a free loopback port with the given extra environment."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: Mapping[str, str] | None = None) -> Server:
        port = free_port()
        log_path = tmp_path / f"serve-{port}.log"
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PROMETHEUS_", "REDIS_", "ACCESS_LOG", "METRICS_"))
        }
        environment.update(
            {
                "APP_ENV": "local",
                "LOCAL_ISSUER_KEY_FILE": str(tmp_path / "issuer-key.pem"),
                "OAUTH_CLIENT_ID": CLIENT_ID,
                "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
                "MCP_URL": f"http://127.0.0.1:{port}/mcp",
                "TOKEN_URL": f"http://127.0.0.1:{port}/oauth2/token",
                **(env or {}),
            }
        )
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [MCP_SERVICE, "serve", "--port", str(port), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=tmp_path,
            )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log_path)
        return Server(process, url, log_path)

    yield start
    for process in started:
        stop(process)
