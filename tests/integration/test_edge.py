"""The edge of a real `mcp-service serve`: everything between the socket and the verifier is
bounded (header size and count, deadlines for the head and the body, connections per
process), and each refusal comes before any token is looked at.

Each test talks raw HTTP/1.1 over a socket, because the inputs are what a well-behaved client
library would never send.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, ServiceProcess, clean_env, free_port
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

ADD = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "add", "arguments": {}}}
).encode()


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    server = JwksServer(jwks_of(rsa_key()), JWKS_PATH).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def edge(jwks: JwksServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One replica with short deadlines and a small in-flight cap, shared by the tests here."""
    env = pool_env(
        jwks.url,
        HEADER_TIMEOUT_SECONDS="1",
        BODY_TIMEOUT_SECONDS="1",
        MAX_IN_FLIGHT="4",
        IP_RATE_LIMIT="off",
        RATE_LIMIT="off",
    )
    with ServiceProcess(env, tmp_path_factory.mktemp("edge")) as service:
        yield service


def connect(service: ServiceProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    sock.settimeout(10)
    return sock


def head(path: str = "/mcp", method: str = "POST", extra: list[bytes] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    return b"\r\n".join([*lines, *(extra or [])]) + b"\r\n\r\n"


def answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and everything the server wrote until it closed or 10 s passed."""
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and _complete(data):
                break
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection (EOF or reset), None if it did not."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def token() -> str:
    return TokenFactory().token()


# Header size and count ------------------------------------------------------------------------


def test_a_header_larger_than_the_limit_gets_431(edge: ServiceProcess) -> None:
    with connect(edge) as sock:
        sock.sendall(head(extra=[b"X-Big: " + b"a" * 65_536]))
        status, data = answer(sock)
    assert status == 431
    assert json.loads(data.partition(b"\r\n\r\n")[2])["reason"] == "header_too_large"


def test_more_headers_than_the_limit_get_431(edge: ServiceProcess) -> None:
    with connect(edge) as sock:
        sock.sendall(head(extra=[b"X-%d: 1" % i for i in range(101)]))
        status, data = answer(sock)
    assert status == 431
    assert json.loads(data.partition(b"\r\n\r\n")[2])["reason"] == "too_many_headers"


def test_an_unfinished_endless_header_is_cut_at_the_limit(edge: ServiceProcess) -> None:
    """The parser would buffer a header until it ends; it is refused once past the limit."""
    with connect(edge) as sock:
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 8 * 1_048_576:
                sock.sendall(b"a" * 65_536)
                sent += 65_536
        status, _ = answer(sock)
    # Refused, and the connection closed long before 8 MiB went out (what did go out sat in
    # the loopback's socket buffers, a few MiB at most, not in the server).
    assert status == 431
    assert sent < 8 * 1_048_576


def test_a_request_line_longer_than_the_limit_gets_414(edge: ServiceProcess) -> None:
    with connect(edge) as sock:
        sock.sendall(head(path="/mcp?" + "q" * 9000))
        status, _ = answer(sock)
    assert status == 414


def test_a_head_within_the_limits_is_served(edge: ServiceProcess) -> None:
    extra = [b"Authorization: Bearer " + token().encode(), b"Content-Type: application/json"]
    extra += [b"Accept: application/json, text/event-stream", b"Content-Length: %d" % len(ADD)]
    extra += [b"X-Filler-%d: %s" % (i, b"f" * 100) for i in range(80)]
    with connect(edge) as sock:
        sock.sendall(head(extra=extra) + ADD)
        status, _ = answer(sock)
    assert status == 200


def test_pipelined_requests_larger_together_than_the_head_bound_are_all_served(
    edge: ServiceProcess,
) -> None:
    """The head's bound counts one head: 48 whole requests in one write (~60 KiB, past the
    40 KiB a head may take) are each answered."""
    extra = [b"Authorization: Bearer " + token().encode(), b"Content-Type: application/json"]
    extra += [b"Accept: application/json, text/event-stream", b"Content-Length: %d" % len(ADD)]
    request = head(extra=extra) + ADD
    count = 48
    assert len(request) * count > 40 * 1024
    with connect(edge) as sock:
        sock.sendall(request * count)
        data = b""
        with contextlib.suppress(TimeoutError):
            while data.count(b"HTTP/1.1 200 ") < count:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    assert data.count(b"HTTP/1.1 200 ") == count


# Deadlines ------------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    edge: ServiceProcess,
) -> None:
    with connect(edge) as sock:
        closed = closed_within(sock, 5)
    assert closed is not None and closed < 3


def test_a_head_sent_byte_by_byte_is_closed_after_the_header_timeout(
    edge: ServiceProcess,
) -> None:
    """Slowloris: bytes keep coming, but the head never completes in time."""
    with connect(edge) as sock:
        started = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa":
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
                if time.monotonic() - started > 6:
                    break
        status, _ = answer(sock)
        elapsed = time.monotonic() - started
    assert elapsed < 4
    assert status in (0, 408)


def test_an_idle_kept_alive_connection_outlives_the_header_timeout(edge: ServiceProcess) -> None:
    extra = [b"Authorization: Bearer " + token().encode(), b"Content-Type: application/json"]
    extra += [b"Accept: application/json, text/event-stream", b"Content-Length: %d" % len(ADD)]
    with connect(edge) as sock:
        sock.sendall(head(extra=extra) + ADD)
        assert answer(sock)[0] == 200
        time.sleep(2.5)  # idle past the 1 s header timeout, within the 75 s keep-alive
        sock.sendall(head(extra=extra) + ADD)
        assert answer(sock)[0] == 200


def test_a_slow_body_ends_with_408_and_frees_its_in_flight_slot(edge: ServiceProcess) -> None:
    """Four authenticated uploads that stall mid-body would hold the whole in-flight cap."""
    extra = [b"Authorization: Bearer " + token().encode(), b"Content-Type: application/json"]
    extra += [b"Accept: application/json, text/event-stream", b"Content-Length: 75"]
    slow = [connect(edge) for _ in range(4)]
    try:
        for sock in slow:
            sock.sendall(head(extra=extra) + b'{"jso')
        statuses = [answer(sock)[0] for sock in slow]
        assert statuses == [408] * 4
        assert call_add(edge.url, token(), timeout=5).status_code == 200
    finally:
        for sock in slow:
            sock.close()


def test_an_unauthenticated_chunked_upload_is_refused_before_its_body_arrives(
    edge: ServiceProcess,
) -> None:
    extra = [b"Transfer-Encoding: chunked", b"Content-Type: application/json"]
    with connect(edge) as sock:
        sock.sendall(head(extra=extra) + b"100000\r\n" + b"x" * 65_536)  # 1 MiB announced
        status, _ = answer(sock)
    assert status == 401


# Connections per process ----------------------------------------------------------------------


def _lower_nofile(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def test_connections_past_the_cap_are_refused_at_once_and_the_service_keeps_serving(
    jwks: JwksServer, tmp_path: Path
) -> None:
    """With 256 descriptors the cap is 192 connections: 250 silent ones cannot starve the
    process of descriptors; those past the cap are closed at once, with a log line."""
    port = free_port()
    env = clean_env(pool_env(jwks.url, HEADER_TIMEOUT_SECONDS="30"), tmp_path)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_service", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: _lower_nofile(256),
        )
    silent: list[socket.socket] = []
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=10) as kept:
            assert kept.get("/healthz").status_code == 200  # a connection opened before
            for _ in range(250):
                silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            time.sleep(0.5)
            refused = sum(closed_within(sock, 0.05) is not None for sock in silent)
            assert refused >= 250 - 192
            assert kept.get("/readyz").status_code == 200  # Redis-free replica: JWKS loaded
        for sock in silent:
            sock.close()
        silent.clear()
        time.sleep(0.5)
        assert call_add(url, token(), timeout=10).status_code == 200
    finally:
        for sock in silent:
            sock.close()
        process.terminate()
        process.wait(15)
    text = log_path.read_text()
    assert "MAX_CONNECTIONS" in text
    assert "Too many open files" not in text
