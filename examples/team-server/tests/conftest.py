"""The team server served through the whole stack, over real HTTP on a loopback port: the
service built by mcp-service's own `build_service` around it (embedded issuer, TOOL_GROUPS),
run by uvicorn in a thread for the module's tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from mcp_service.app import build_service
from mcp_service.issuer import LocalIssuer
from mcp_service.settings import Settings

APP = "team_server.server:create_server"


@dataclass
class Stack:
    url: str
    issuer: LocalIssuer

    def token(self, *groups: str, sub: str = "alice") -> str:
        """An access token as the pool would sign it, with these Cognito groups."""
        return self.issuer.issue(sub=sub, **{"cognito:groups": list(groups)})


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    values: dict[str, Any] = {
        "app_env": "local",
        "user_pool_id": "",
        "redis_url": "",
        "mcp_app": APP,
        "tool_groups": {"deploy": ["ops"]},
        "local_issuer_key_file": Path(tmp_path_factory.mktemp("team")) / "issuer-key.pem",
    }
    service = build_service(Settings(_env_file=None, **values))  # type: ignore[call-arg]
    assert service.issuer is not None
    port = free_port()
    config = uvicorn.Config(service.app, host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    yield Stack(f"http://127.0.0.1:{port}", service.issuer)
    server.should_exit = True
    thread.join(10)
