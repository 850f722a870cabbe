"""A real nginx running the committed deploy/nginx configuration on loopback.

The compose addresses in upstream.conf are swapped for loopback ports and the listen port is
substituted, so every other parameter under test (max_fails, keepalive, proxy_next_upstream...)
is the one compose runs with. The pid file moves into the copy's own directory, so two nginx
instances (two tests, or a test and a developer's) never signal each other.

`Nginx` can take a replica out of the upstream (`down`) and reload, as an ALB deregistration
does, and tell when nothing of nginx's still talks to it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.processes import terminate

ROOT = Path(__file__).resolve().parents[2]
NGINX_DIR = ROOT / "deploy/nginx"
COMPOSE_ADDRESSES = ("172.28.80.11", "172.28.80.12", "172.28.80.13")
ISSUER_ADDRESS = "172.28.80.20"
COMMITTED_PID = "pid /tmp/nginx.pid;"


def nginx_binary() -> str | None:
    """nginx's path, also looking in the sbin directories a non-login PATH may lack."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/local/sbin:/usr/sbin:/sbin")


def require_nginx() -> str:
    """nginx's path; without it, skip locally and fail under CI=true (.ci/run installs it)."""
    path = nginx_binary()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("nginx is not installed, and CI must run this check (.ci/run installs it)")
        pytest.skip("nginx is not installed")
    return path


def upstream_conf(replica_ports: Sequence[int], issuer_port: int, down: Iterable[int] = ()) -> str:
    """The committed upstream.conf on loopback; the replicas on `down` ports marked `down`."""
    upstream = (NGINX_DIR / "upstream.conf").read_text()
    for address, port in zip(COMPOSE_ADDRESSES, replica_ports, strict=True):
        upstream = upstream.replace(f"{address}:8000", f"127.0.0.1:{port}")
    upstream = upstream.replace(f"{ISSUER_ADDRESS}:8000", f"127.0.0.1:{issuer_port}")
    assert "172.28." not in upstream
    block = re.search(r"upstream mcp_replicas \{.*?\}", upstream, re.DOTALL)
    assert block is not None
    replicas = block.group(0)
    for port in down:
        replicas, marked = re.subn(rf"(server 127\.0\.0\.1:{port}\b[^;]*);", r"\1 down;", replicas)
        assert marked == 1, f"no replica on port {port}"
    return upstream[: block.start()] + replicas + upstream[block.end() :]


def nginx_dir(target: Path, replica_ports: Sequence[int], issuer_port: int, listen: int) -> Path:
    """deploy/nginx copied to `target`, upstream addresses, listen port and pid file substituted."""
    target.mkdir(parents=True, exist_ok=True)
    conf = (NGINX_DIR / "nginx.conf").read_text()
    assert COMMITTED_PID in conf
    (target / "nginx.conf").write_text(conf.replace(COMMITTED_PID, f"pid {target}/nginx.pid;"))
    (target / "upstream.conf").write_text(upstream_conf(replica_ports, issuer_port))
    (target / "listen.conf").write_text(f"listen 127.0.0.1:{listen};\n")
    return target


def nginx_test(nginx: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx, "-t", "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def established_to(port: int) -> int:
    """TCP connections to 127.0.0.1:PORT currently established, whichever process holds them
    (Linux: /proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == wanted and fields[3] == "01":  # remote address, state ESTABLISHED
            count += 1
    return count


def children(pid: int) -> set[int]:
    """The live processes whose parent is PID (nginx's workers, for its master)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'
            after = stat.read_text().rsplit(")", 1)[1].split()
            if int(after[1]) == pid and after[0] != "Z":
                found.add(int(stat.parent.name))
    return found


class Nginx:
    """nginx in the foreground (`daemon off`) on a copy of deploy/nginx, stopped by its PID."""

    def __init__(
        self, directory: Path, replica_ports: Sequence[int], issuer_port: int, listen: int
    ) -> None:
        self.binary = require_nginx()
        self.directory = directory
        self.replica_ports = list(replica_ports)
        self.issuer_port = issuer_port
        self.listen = listen
        self.log_path = directory.parent / f"{directory.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        nginx_dir(directory, replica_ports, issuer_port, listen)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen}"

    def _command(self, *extra: str) -> list[str]:
        conf = self.directory / "nginx.conf"
        return [self.binary, "-p", str(self.directory), "-c", str(conf), "-e", "stderr", *extra]

    def start(self, timeout: float = 30) -> Nginx:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._command("-g", "daemon off;"), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{self.url}/nonexistent-probe", timeout=1)
                return self
            time.sleep(0.1)
        raise RuntimeError(f"nginx did not listen within {timeout} s:\n{self.log()}")

    def set_down(self, down: Iterable[int], timeout: float = 30) -> None:
        """Rewrite upstream.conf with these replicas `down`, `nginx -s reload`, and wait until
        the workers of the old configuration have finished their requests and exited."""
        assert self.process is not None
        (self.directory / "upstream.conf").write_text(
            upstream_conf(self.replica_ports, self.issuer_port, down)
        )
        old = children(self.process.pid)
        reload = subprocess.run(
            self._command("-s", "reload"), capture_output=True, text=True, timeout=30, check=False
        )
        assert reload.returncode == 0, reload.stderr
        deadline = time.monotonic() + timeout
        while True:
            current = children(self.process.pid)
            if current and not current & old:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nginx's old workers {current & old} still run:\n{self.log()}")
            time.sleep(0.05)

    def drain(self, port: int, timeout: float = 30) -> None:
        """Take the replica on PORT out (as an ALB deregistration does) and wait for its
        requests in flight: afterwards no connection to it is left open."""
        self.set_down([port], timeout)
        deadline = time.monotonic() + timeout
        while established_to(port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"connections to :{port} still open after draining")
            time.sleep(0.05)

    def stop(self) -> None:
        terminate(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @contextlib.contextmanager
    def running(self) -> Iterator[Nginx]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
