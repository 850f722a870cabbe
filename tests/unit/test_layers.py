"""The middleware stack as declared: its order, what switches a layer off, and what uvicorn
sees at the top."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import uvicorn

from tests.support.service import make_service

# Outermost first, every layer on (docs/architecture.md, "Layers").
DOCUMENTED = [
    "ObserveRequests",
    "ProxyHeadersMiddleware",
    "CORSMiddleware",
    "IpRateLimit",
    "InFlightLimit",
    "BearerAuth",
    "BodyLimit",
    "ToolScopeCheck",
    "SubjectRateLimit",
]
EVERYTHING_ON = {
    "trusted_proxies": "10.0.0.0/8",
    "cors_allow_origins": "https://inspector.example",
    "ip_rate_limit": "100/second",
    "max_in_flight": 8,
    "rate_limit": "600/minute",
    "tool_scopes": '{"add": ["mcp/math"]}',
}


ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def documented_layers() -> list[str]:
    """The class column of the request-path table, down to the MCP app."""
    section = ARCHITECTURE.read_text().split("## The request path", 1)[1].split("\n## ", 1)[0]
    classes = []
    for row in re.findall(r"^\| \d+ \|[^|]*\|([^|]*)\|", section, re.M):
        name = re.search(r"`([A-Za-z_.]+)`", row)
        assert name is not None, row
        if name.group(1) == "FastMCP.http_app":
            return classes
        classes.append(name.group(1))
    raise AssertionError("no FastMCP.http_app row in the request-path table")


def test_the_architecture_page_lists_the_layers_in_this_order() -> None:
    assert documented_layers() == DOCUMENTED


def names(**overrides: object) -> list[str]:
    return [layer.cls.__name__ for layer in make_service(**overrides).layers]


def test_the_layers_run_in_the_documented_order() -> None:
    assert names(**EVERYTHING_ON) == DOCUMENTED


@pytest.mark.parametrize(
    ("setting", "off", "layer"),
    [
        ("trusted_proxies", "", "ProxyHeadersMiddleware"),
        ("cors_allow_origins", "", "CORSMiddleware"),
        ("ip_rate_limit", "off", "IpRateLimit"),
        ("max_in_flight", 0, "InFlightLimit"),
        ("rate_limit", "off", "SubjectRateLimit"),
        ("tool_scopes", "{}", "ToolScopeCheck"),
    ],
)
def test_a_layer_switched_off_is_left_out_and_the_order_kept(
    setting: str, off: object, layer: str
) -> None:
    assert names(**{**EVERYTHING_ON, setting: off}) == [n for n in DOCUMENTED if n != layer]


@pytest.mark.parametrize("settings", [EVERYTHING_ON, {}], ids=["everything-on", "defaults"])
def test_uvicorn_sees_an_asgi3_app(settings: dict[str, object]) -> None:
    config = uvicorn.Config(make_service(**settings).app, log_config=None)
    config.load()
    assert config.interface == "asgi3"
