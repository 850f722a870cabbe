"""The client side of the CLI: a token by client credentials, then a tool call through
FastMCP's client, with refusals turned into one readable line."""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import httpx
import httpx2

from mcp_service.errors import CallError, TokenRequestError
from mcp_service.settings import Settings

REFUSALS = frozenset({401, 403, 413, 429, 503})


def parse_arguments(pairs: Sequence[str]) -> dict[str, Any]:
    """key=value pairs; a value that parses as JSON is used as such (5, true, [1,2])."""
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {pair!r} is not key=value")
        try:
            arguments[key] = json.loads(value)
        except ValueError:
            arguments[key] = value
    return arguments


async def fetch_token(settings: Settings, scope: str | None = None) -> str:
    """POST the client_credentials grant to TOKEN_URL (HTTP Basic) and return the token."""
    form = {"grant_type": "client_credentials"}
    scopes = settings.oauth_scopes if scope is None else scope
    if scopes:
        form["scope"] = scopes
    url = settings.token_endpoint
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.post(
                url, data=form, auth=(settings.client_id, settings.client_secret)
            )
    except httpx.HTTPError as exc:
        raise TokenRequestError(f"cannot reach TOKEN_URL {url}: {type(exc).__name__}") from None
    body = _json(response)
    if response.status_code != 200:
        error = body.get("error", f"HTTP {response.status_code}")
        detail = body.get("error_description")
        raise TokenRequestError(
            f"token request refused: {error}" + (f" ({detail})" if detail else "")
        )
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenRequestError("token response has no access_token")
    return token


async def call_tool(
    settings: Settings, url: str, tool: str, arguments: dict[str, Any], scope: str | None = None
) -> Any:
    from fastmcp import Client
    from fastmcp.exceptions import ToolError

    auth = RecordingBearer(await fetch_token(settings, scope))
    try:
        async with Client(url, auth=auth, timeout=30) as client:
            result = await client.call_tool(tool, arguments)
    except ToolError as exc:
        if auth.refusal is not None:
            raise CallError(describe_response(*auth.refusal)) from None
        raise CallError(f"tool {tool} failed: {one_line(str(exc))}") from None
    except Exception as exc:
        if auth.refusal is not None:
            raise CallError(describe_response(*auth.refusal)) from None
        raise CallError(describe_failure(exc, url)) from None
    if result.structured_content is not None:
        return _unwrap(result.structured_content, result.data)
    return [getattr(block, "text", str(block)) for block in result.content]


class RecordingBearer(httpx2.Auth):
    """Bearer auth that remembers a refusal, which the MCP client reports only as a JSON-RPC
    error ("Server returned an error response"), losing the status and its headers."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"
        self.refusal: tuple[int, dict[str, str]] | None = None

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = self._header
        response = yield request
        if response.status_code in REFUSALS:
            self.refusal = (response.status_code, dict(response.headers))


def one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("For further information")]
    joined = "; ".join(lines)
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def _unwrap(structured: dict[str, Any], data: Any) -> Any:
    if set(structured) == {"result"}:
        return structured["result"]
    return structured if data is None or not isinstance(data, dict) else data


def describe_failure(exc: BaseException, url: str) -> str:
    """One line for an HTTP refusal or a transport failure, found anywhere in the chain."""
    for err in _chain(exc):
        response = getattr(err, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and response is not None:
            return describe_response(status, dict(response.headers))
    for err in _chain(exc):
        name = type(err).__name__
        if "Connect" in name or isinstance(err, ConnectionError | OSError):
            return f"cannot reach {url}: {name}"
    return f"call failed: {type(exc).__name__}: {exc}"


def describe_response(status: int, headers: Mapping[str, str]) -> str:
    """One line for a refusal, from its status and headers (the body may be a stream)."""
    headers = {name.lower(): value for name, value in headers.items()}
    if status == 429:
        return f"rate limited, retry in {headers.get('retry-after', '?')} s"
    if status == 503:
        return f"service unavailable, retry in {headers.get('retry-after', '?')} s"
    if status in (401, 403):
        challenge = _challenge_params(headers.get("www-authenticate", ""))
        label = "unauthorized" if status == 401 else "forbidden"
        error = challenge.get("error", "no token accepted" if status == 401 else "forbidden")
        detail = challenge.get("error_description", "")
        if challenge.get("scope") and status == 403:
            detail = f"{detail} (needs scope {challenge['scope']})".strip()
        return f"{label}: {error}" + (f": {detail}" if detail else "")
    return f"server answered HTTP {status}"


def _challenge_params(value: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        err = pending.pop()
        if err in seen:
            continue
        seen.append(err)
        pending += [e for e in (err.__cause__, err.__context__) if e is not None]
        pending += list(getattr(err, "exceptions", ()))
    return seen


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
