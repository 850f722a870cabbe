"""The served server: loaded from MCP_APP, its components read, and the settings that name its
tools (TOOL_SCOPES, TOOL_GROUPS, RATE_LIMIT_TOOL_COSTS) checked against them, names under an
upstream's namespace for the namespace only, as its tools are known once it answers; each
upstream's credential must be in the environment. `serve`,
`check-config` and every worker go through `served_server()`, so a name the server does not
have is an exit 2 at start, never a rule that silently guards nothing."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastmcp import FastMCP

from mcp_service.components import Components, components_of
from mcp_service.errors import Problem, SettingsError
from mcp_service.loader import load_server
from mcp_service.settings import Settings

SHOWN = 12  # tool names a message lists before "..."


@dataclass(frozen=True, slots=True)
class Served:
    server: FastMCP[Any]
    components: Components


def served_server(settings: Settings, server: FastMCP[Any] | None = None) -> Served:
    """`server`, or the one MCP_APP names, with its components; a `SettingsError` when it
    cannot be loaded or a setting names a tool it does not have."""
    if server is None:
        server = load_server(settings.mcp_app)
    components = components_of(server)
    problems = unknown_tools(settings, components.tool_names, namespaces=settings.upstreams)
    problems += missing_credentials(settings)
    if problems:
        raise SettingsError(problems)
    return Served(server, components)


def missing_credentials(
    settings: Settings, environ: Mapping[str, str] = os.environ
) -> list[Problem]:
    """An upstream whose credential's environment variable is unset or empty (the message
    names the variable, never a value)."""
    return [
        ("UPSTREAMS", f"{namespace}: the environment variable {variable} is not set")
        for namespace, upstream in settings.upstreams.items()
        for variable in upstream.variables
        if not environ.get(variable)
    ]


def unknown_tools(
    settings: Settings, tools: frozenset[str], *, namespaces: Iterable[str]
) -> list[Problem]:
    """One problem per name a per-tool setting gives that is neither a tool of the server nor
    under an upstream's namespace (`ns_...`, whose tools are only known once it answers)."""
    prefixes = tuple(f"{namespace}_" for namespace in namespaces)
    known = ", ".join(sorted(tools)[:SHOWN]) + (", ..." if len(tools) > SHOWN else "")
    per_tool: tuple[tuple[str, Mapping[str, Any]], ...] = (
        ("TOOL_SCOPES", settings.tool_scopes),
        ("TOOL_GROUPS", settings.tool_groups),
        ("RATE_LIMIT_TOOL_COSTS", settings.rate_limit_tool_costs),
    )
    return [
        (variable, f"{name!r} is not a tool of the served server ({known or 'it has none'})")
        for variable, names in per_tool
        for name in names
        if name not in tools and not name.startswith(prefixes)
    ]
