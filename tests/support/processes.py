"""Real servers for integration tests: on loopback, on a free port, stopped by their PID."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from mcp_service.settings import Settings

# Every variable the service reads, so a developer's environment never leaks into a test.
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


def terminate(
    process: subprocess.Popen[Any] | None, grace: float = 15, *, group: bool = False
) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL: a process started by a test ends;
    with `group`, its whole process group (one started with `start_new_session=True`)."""
    if process is None or process.poll() is not None:
        return

    def deliver(signum: signal.Signals) -> None:
        if not group:
            process.send_signal(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    deliver(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        deliver(signal.SIGKILL)
        process.wait(5)


def free_port() -> int:
    """A loopback TCP port that nothing listens on now (the one copy every test uses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str], cwd: Path) -> dict[str, str]:
    """The test process's environment without any of our settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    env.update(extra)
    env.setdefault("LOCAL_ISSUER_KEY_FILE", str(cwd / "issuer-key.pem"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `mcp-service ARGS` as a user would, in `cwd` (so no stray .env is read)."""
    return subprocess.run(
        [sys.executable, "-m", "mcp_service", *args],
        env=clean_env(env, cwd),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServiceProcess:
    """`mcp-service serve` in a child process; `command` is the mcp-service to run (by default
    the one of the test's own environment)."""

    def __init__(
        self,
        env: Mapping[str, str],
        cwd: Path,
        *,
        args: tuple[str, ...] = (),
        command: Sequence[str] = (sys.executable, "-m", "mcp_service"),
    ) -> None:
        self.port = free_port()
        self.cwd = cwd
        self.log_path = cwd / f"serve-{self.port}.log"
        self.env = clean_env(env, cwd)
        self.args = args
        self.command = tuple(command)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ServiceProcess:
        return self.launch().wait_ready(timeout)

    def launch(self) -> ServiceProcess:
        """Start the process without waiting (to start several at once)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.command, "serve", "--port", str(self.port), *self.args],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 30) -> ServiceProcess:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        terminate(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A private `redis-server` on a free loopback port, for tests that stop and restart it.
    `options` are more `redis-server` arguments (`--tls-port`, `--cluster-enabled`, ...);
    `config` lines go into a configuration file (ACL users); with `tls` the port is TLS-only."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        options: Sequence[str] = (),
        config: Sequence[str] = (),
        tls: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.options = tuple(options)
        self.config = tuple(config)
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        command = [binary]
        if self.config:
            conf = self.workdir / f"redis-{self.port}.conf"
            conf.write_text("".join(f"{line}\n" for line in self.config))
            command.append(str(conf))
        ports = (
            ["--port", "0", "--tls-port", str(self.port)]
            if self.tls
            else ["--port", str(self.port)]
        )
        command += [
            *ports,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            *self.options,
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {' '.join(command)}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class JwksServer:
    """A JWKS endpoint on loopback that counts requests and can go away and come back."""

    def __init__(self, document: Any, path: str, port: int | None = None) -> None:
        self.document = document
        self.path = path
        self.port = port or free_port()
        self.requests = 0
        self.delay = 0.0
        self.trickle = 0.0  # seconds between the bytes of the body (a slow endpoint)
        self.status = 200
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> JwksServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests += 1
                if owner.delay:
                    time.sleep(owner.delay)
                if self.path != owner.path:
                    self.send_error(404)
                    return
                body = json.dumps(owner.document).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not owner.trickle:
                    self.wfile.write(body)
                    return
                with contextlib.suppress(OSError):
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(owner.trickle)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # the default backlog of 5 drops SYNs of a fleet at once

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextlib.contextmanager
    def running(self) -> Iterator[JwksServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
