"""The outermost layer: request ids, the access log, and unhandled errors."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from observability.http import ObserveRequests
from observability.logs import configure_logging
from observability.metrics import Metrics

pytestmark = pytest.mark.anyio


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Everything logged during the test, as parsed JSON lines (each must parse)."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO", stream)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


async def test_a_sane_incoming_request_id_is_echoed(in_process: Callable[..., Any]) -> None:
    async with in_process() as svc:
        response = await svc.client.get("/healthz", headers={"X-Request-Id": "req-42.a:b_C"})
    assert response.headers["x-request-id"] == "req-42.a:b_C"


@pytest.mark.parametrize(
    "sent",
    ["x" * 129, "has space", "semi;colon", "new\\nline", "ünïcode", ""],
    ids=["too-long", "space", "semicolon", "escape", "non-ascii", "empty"],
)
async def test_an_unsafe_request_id_is_replaced_by_a_generated_one(
    in_process: Callable[..., Any], sent: str
) -> None:
    async with in_process() as svc:
        response = await svc.client.get(
            "/healthz", headers=[(b"x-request-id", sent.encode("utf-8"))]
        )
    echoed = response.headers["x-request-id"]
    assert echoed != sent
    assert len(echoed) == 32
    assert int(echoed, 16) >= 0


async def test_each_request_without_an_id_gets_a_distinct_one(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        ids = {(await svc.client.get("/healthz")).headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


async def test_refusals_carry_the_request_id_also_on_401(in_process: Callable[..., Any]) -> None:
    async with in_process() as svc:
        response = await svc.call_tool(None, "add", a=1, b=1)
    assert response.status_code == 401
    assert len(response.headers["x-request-id"]) == 32


async def test_the_access_log_line_has_request_route_status_duration_and_caller(
    in_process: Callable[..., Any], log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    async with in_process(access_log=True) as svc:
        token = await svc.token()
        response = await svc.call_tool(token, "add", a=1, b=1)
        await svc.client.get("/metrics")  # a later line must not carry the caller above
    rid = response.headers["x-request-id"]
    access = [line for line in log_lines() if line["logger"] == "mcp_service.access"]
    [line] = [line for line in access if line["request_id"] == rid]
    assert line["message"] == "request"
    assert line["route"] == "/mcp"
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["subject"] == svc.service.settings.client_id
    assert line["client_id"] == svc.service.settings.client_id
    assert line["level"] == "INFO"
    assert line["timestamp"].endswith("+00:00")
    [metrics_line] = [line for line in access if line["route"] == "/metrics"]
    assert "subject" not in metrics_line


async def test_a_refused_request_logs_its_reason_code_with_the_request_id(
    in_process: Callable[..., Any], log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    async with in_process(access_log=True) as svc:
        issuer = svc.service.issuer
        response = await svc.call_tool(issuer.issue(exp=1_000_000), "add", a=1, b=1)
    rid = response.headers["x-request-id"]
    mine = [line for line in log_lines() if line.get("request_id") == rid]
    refused = [line for line in mine if line["message"] == "request refused"]
    access = [line for line in mine if line["logger"] == "mcp_service.access"]
    assert refused
    assert refused[0]["reason"] == "expired"
    assert refused[0]["status"] == 401
    assert access
    assert access[0]["reason"] == "expired"
    assert access[0]["status"] == 401


async def test_without_access_log_a_successful_request_writes_no_line(
    in_process: Callable[..., Any], log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    async with in_process(access_log=False) as svc:
        token = await svc.token()
        before = len(log_lines())
        response = await svc.call_tool(token, "add", a=1, b=1)
    rid = response.headers["x-request-id"]
    assert not [line for line in log_lines()[before:] if line.get("request_id") == rid]


async def test_an_unhandled_error_is_logged_with_its_request_id_and_counted_as_500(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    metrics = Metrics()
    app = ObserveRequests(broken, metrics=metrics, routes=["/mcp"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/mcp", headers={"X-Request-Id": "trace-me"})
    assert response.status_code == 500
    [line] = [line for line in log_lines() if line.get("request_id") == "trace-me"]
    assert line["level"] == "ERROR"
    assert "RuntimeError: boom" in line["exception"]
    text = metrics.exposition().decode()
    assert 'route="/mcp",status="500"' in text


def test_a_forked_worker_generates_request_ids_of_its_own() -> None:
    import os

    from observability.http import request_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(write, request_id([]).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    parent = request_id([])
    assert len(child) == len(parent) == 32
    assert child[:16] != parent[:16]
