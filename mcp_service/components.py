"""What the loaded server offers: its tools, resources, templates and prompts, read once at
start-up, before any upstream is mounted.

The stack follows this inventory rather than a list of its own: metric labels, the names
TOOL_SCOPES, TOOL_GROUPS and RATE_LIMIT_TOOL_COSTS may use, the label of an audit line. It is
read from the server's providers (not `FastMCP.list_tools()`, which would run the server's
middleware and hide every component with an `auth=` check from a caller without a token).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from fastmcp import FastMCP
from fastmcp.prompts import Prompt
from fastmcp.resources import Resource, ResourceTemplate
from fastmcp.tools import Tool
from fastmcp.tools.function_tool import FunctionTool

OTHER = "other"  # the label of anything that is not a component of the server

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Components:
    tools: tuple[Tool, ...]
    resources: tuple[Resource, ...]
    templates: tuple[ResourceTemplate, ...]
    prompts: tuple[Prompt, ...]

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(tool.name for tool in self.tools)

    @property
    def prompt_names(self) -> frozenset[str]:
        return frozenset(prompt.name for prompt in self.prompts)

    def resource_label(self, uri: str) -> str:
        """A bounded name for a read of `uri`: the resource's URI, or the URI template it
        matches (never the concrete URI, which carries the template's arguments)."""
        for resource in self.resources:
            if str(resource.uri) == uri:
                return uri
        for template in self.templates:
            if template.matches(uri) is not None:
                return template.uri_template
        return OTHER


def components_of(server: FastMCP[Any]) -> Components:
    """The components of `server`'s providers as they are now."""

    async def collect() -> Components:
        tools: list[Tool] = []
        resources: list[Resource] = []
        templates: list[ResourceTemplate] = []
        prompts: list[Prompt] = []
        for provider in server.providers:
            tools += await provider.list_tools()
            resources += await provider.list_resources()
            templates += await provider.list_resource_templates()
            prompts += await provider.list_prompts()
        return Components(tuple(tools), tuple(resources), tuple(templates), tuple(prompts))

    return _run(collect())


def bound_async_tools(components: Components, seconds: float | None) -> None:
    """Give each async function tool without a timeout of its own `seconds`
    (TOOL_TIMEOUT_SECONDS), enforced by FastMCP, which cancels it. A sync tool runs in a worker
    thread that cannot be interrupted, where a timeout would only throw away a late result, so
    it gets none. A timeout the server set itself is kept."""
    if not seconds:
        return
    for tool in components.tools:
        if (
            isinstance(tool, FunctionTool)
            and tool.timeout is None
            and inspect.iscoroutinefunction(tool.fn)
        ):
            tool.timeout = seconds


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion from synchronous code, inside a running loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
