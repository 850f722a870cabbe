"""Upstream MCP servers for UPSTREAMS tests, on loopback on free ports, stopped by PID: a real
one (tests/support/upstream_server.py) and one that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import free_port, terminate

ROOT = Path(__file__).resolve().parents[2]


class UpstreamServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UpstreamServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.upstream_server", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/seen", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the upstream server did not start")

    def seen(self) -> dict[str, Any]:
        document: dict[str, Any] = httpx.get(f"{self.url}/seen", timeout=5).json()
        return document

    def stop(self) -> None:
        terminate(self.process, grace=5)

    def __enter__(self) -> UpstreamServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SilentServer:
    """Accepts every connection, reads what it is sent, and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.held: list[socket.socket] = []
        self.closed = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.closed.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                connection, _ = self.listener.accept()
                self.held.append(connection)

    def __enter__(self) -> SilentServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        for connection in self.held:
            connection.close()
        self.listener.close()
