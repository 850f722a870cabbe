"""MCP_APP: which forms load a server, and every form that does not as one line naming MCP_APP."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from fastmcp import FastMCP

from mcp_service.errors import SettingsError
from mcp_service.loader import load_server
from mcp_service.served import served_server
from tests.support.service import make_settings

SOURCE = """
from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier

mcp = FastMCP("team")

@mcp.tool
def search(query: str) -> str:
    return query

def create():
    return FastMCP("made")

class Holder:
    inner = mcp

NUMBER = 5

def explode():
    raise RuntimeError("the database is down\\nsecond line")

def returns_text():
    return "a server"

def needs_arguments(name):
    return FastMCP(name)

guarded = FastMCP("guarded", auth=StaticTokenVerifier(tokens={}))
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of a fresh name in the working directory (as a team's server would be)."""
    name = f"team_server_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SOURCE))
    (tmp_path / f"{name}_broken.py").write_text("raise ImportError('no module named secrets')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader's cwd entry is undone
    return name


@pytest.mark.parametrize(
    ("attribute", "name"), [("mcp", "team"), ("create", "made"), ("Holder.inner", "team")]
)
def test_an_instance_or_a_zero_argument_callable_returning_one_is_loaded_from_the_cwd(
    module: str, attribute: str, name: str
) -> None:
    server = load_server(f"{module}:{attribute}")
    assert isinstance(server, FastMCP)
    assert server.name == name


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("{m}", "is not MODULE:ATTR"),
        ("{m}:", "is not MODULE:ATTR"),
        (":mcp", "is not MODULE:ATTR"),
        ("{m}_missing:mcp", "cannot import"),
        ("{m}_broken:mcp", "cannot import"),
        ("{m}:nothing", "has no attribute 'nothing'"),
        ("{m}:Holder.nothing", "has no attribute 'Holder.nothing'"),
        ("{m}:NUMBER", "is a int, not a FastMCP server"),
        ("{m}:returns_text", "is a str, not a FastMCP server"),
        ("{m}:explode", "raised when called with no arguments"),
        ("{m}:needs_arguments", "raised when called with no arguments"),
        ("{m}:guarded", "has its own auth= provider"),
    ],
)
def test_a_bad_mcp_app_is_one_line_naming_it(module: str, spec: str, says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_server(spec.format(m=module))
    [(variable, message)] = raised.value.problems
    assert variable == "MCP_APP"
    assert says in message
    assert "\n" not in message


@pytest.mark.parametrize("setting", ["tool_scopes", "tool_groups", "rate_limit_tool_costs"])
def test_a_per_tool_setting_naming_a_tool_the_server_lacks_names_setting_and_tool(
    module: str, setting: str
) -> None:
    value = {"searhc": 2} if setting == "rate_limit_tool_costs" else {"searhc": ["x"]}
    settings = make_settings(mcp_app=f"{module}:mcp", **{setting: value})
    with pytest.raises(SettingsError) as raised:
        served_server(settings)
    [(variable, message)] = raised.value.problems
    assert variable == setting.upper()
    assert message.startswith("'searhc' is not a tool of the served server (search)")


def test_per_tool_settings_naming_the_servers_tools_are_accepted(module: str) -> None:
    settings = make_settings(
        mcp_app=f"{module}:mcp",
        tool_scopes={"search": ["mcp/search"]},
        tool_groups={"search": ["staff"]},
        rate_limit_tool_costs={"search": 2},
    )
    assert served_server(settings).components.tool_names == {"search"}


@pytest.mark.parametrize(
    "value", ['{"t": []}', '{"t": "ops"}', '{"t": [""]}', '{"t": [1]}', '["t"]', "{"]
)
def test_tool_groups_must_map_each_tool_to_a_non_empty_list_of_names(value: str) -> None:
    from mcp_service.settings import load_settings

    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None, tool_groups=value)
    assert [variable for variable, _ in raised.value.problems] == ["TOOL_GROUPS"]
