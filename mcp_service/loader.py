"""MCP_APP: the FastMCP server the stack serves, loaded from `MODULE:ATTR`.

As uvicorn and `fastmcp run` do, MODULE is imported from `sys.path` with the working directory
first; ATTR (dotted for nested attributes) is a `FastMCP` instance or a zero-argument callable
returning one. Every way of getting it wrong is a `SettingsError` naming MCP_APP, one line, so
the CLI exits 2 without a traceback. A server with its own `auth=` provider is refused: the
stack is the authentication, and a second one in FastMCP would answer 401s of its own.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, NoReturn

from fastmcp import FastMCP

from mcp_service.errors import SettingsError

VARIABLE = "MCP_APP"
DEMO_APP = "mcp_service.demo:create_server"
EXAMPLE = "e.g. my_team.server:mcp"


def load_server(spec: str) -> FastMCP[Any]:
    """The server `spec` names, or a `SettingsError` naming MCP_APP."""
    module_name, _, attribute = spec.strip().partition(":")
    if not module_name or not attribute:
        _fail(f"{spec!r} is not MODULE:ATTR ({EXAMPLE})")
    cwd = os.getcwd()
    if not sys.path or sys.path[0] != cwd:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # anything the module raises on import is its author's to fix
        _fail(f"cannot import {module_name!r}: {_one_line(exc)}")
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            _fail(f"module {module_name!r} has no attribute {attribute!r}")
    if not isinstance(target, FastMCP) and callable(target):
        try:
            target = target()
        except Exception as exc:
            _fail(f"{spec} raised when called with no arguments: {_one_line(exc)}")
    if not isinstance(target, FastMCP):
        _fail(
            f"{spec} is a {type(target).__name__}, not a FastMCP server or a callable returning one"
        )
    if target.auth is not None:
        _fail(
            f"{spec} has its own auth= provider ({type(target.auth).__name__}); this service "
            "authenticates every request itself: construct the server without auth="
        )
    return target


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fail(message: str) -> NoReturn:
    raise SettingsError([(VARIABLE, message)])
