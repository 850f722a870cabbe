"""AUDIT_LOG: one JSON line per tools/call, resources/read and prompts/get, with who, what, how
it ended and how long it took, and nothing of the arguments, the results or the token."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from observability.logs import JsonFormatter
from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.own_server import create_server
from tests.support.service import make_service
from tests.support.tokens import CLIENT_ID, TokenFactory

FIELDS = {
    "timestamp",
    "request_id",
    "subject",
    "client_id",
    "component",
    "upstream",
    "outcome",
    "duration_ms",
}
SECRET = "zebra-argument-7781"  # an argument value no audit line may carry
SUBJECT = "audited-subject-1"


@pytest.fixture
def audit_lines() -> Iterator[io.StringIO]:
    """The audit logger's lines, formatted as `serve` writes them (during the request)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("mcp_service.audit")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


async def exchange(messages: list[dict[str, Any]], token: str, **settings: Any) -> None:
    values = {"audit_log": True, "tool_timeout_seconds": 0.2, "tool_groups": {"deploy": ["ops"]}}
    service = make_service(server=create_server(), **{**values, **settings})
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    async with running(service.app) as client:
        for message in messages:
            await client.post("/mcp", json=message, headers=headers)


def tool_call(name: str, **arguments: Any) -> dict[str, Any]:
    return rpc("tools/call", {"name": name, "arguments": arguments})


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("message", "component", "outcome"),
    [
        (rpc("tools/call", {"name": "shout", "arguments": {"text": SECRET}}), "shout", "ok"),
        (
            rpc("tools/call", {"name": "shout", "arguments": {"text": 5}}),
            "shout",
            "invalid_arguments",
        ),
        (rpc("tools/call", {"name": "no_such_tool", "arguments": {}}), "no_such_tool", "not_found"),
        (rpc("tools/call", {"name": "wait", "arguments": {"seconds": 3}}), "wait", "timeout"),
        (rpc("tools/call", {"name": "deploy", "arguments": {}}), "deploy", "forbidden"),
        (rpc("resources/read", {"uri": f"items://{SECRET}"}), "items://{item_id}", "ok"),
        (rpc("resources/read", {"uri": "config://settings"}), "config://settings", "ok"),
        (rpc("prompts/get", {"name": "review", "arguments": {"topic": SECRET}}), "review", "ok"),
    ],
    ids=["ok", "invalid", "unknown", "timeout", "forbidden", "template", "resource", "prompt"],
)
async def test_an_audited_request_writes_one_line_with_its_fields_and_no_argument(
    audit_lines: io.StringIO, message: dict[str, Any], component: str, outcome: str
) -> None:
    token = TokenFactory().token(sub=SUBJECT)
    await exchange([message], token)
    [line] = lines(audit_lines)
    assert set(line) >= FIELDS
    assert (line["component"], line["outcome"], line["upstream"]) == (component, outcome, None)
    assert (line["subject"], line["client_id"]) == (SUBJECT, CLIENT_ID)
    assert isinstance(line["request_id"], str) and line["request_id"]
    assert isinstance(line["duration_ms"], float)
    text = audit_lines.getvalue()
    assert SECRET not in text and SECRET.upper() not in text
    assert token not in text and token.split(".")[2] not in text


async def test_lists_and_other_methods_are_not_audited(audit_lines: io.StringIO) -> None:
    await exchange([rpc("tools/list"), rpc("resources/list"), rpc("ping")], TokenFactory().token())
    assert lines(audit_lines) == []


async def test_without_audit_log_nothing_is_written(audit_lines: io.StringIO) -> None:
    await exchange([tool_call("shout", text="a")], TokenFactory().token(), audit_log=False)
    assert lines(audit_lines) == []
