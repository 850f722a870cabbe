"""UPSTREAMS: the shape of one upstream MCP server's entry, parsed with messages an operator
can act on (the setting's one line names the namespace and the field).

    {"docs": {"url": "https://docs.internal/mcp", "auth": "none", "timeout_seconds": 30},
     "crm": {"url": "...", "auth": {"bearer_env": "CRM_TOKEN"}},
     "tickets": {"url": "...", "auth": {"client_credentials": {"token_url": "...",
        "client_id": "...", "client_secret_env": "TICKETS_SECRET", "scopes": ["tickets/read"]}}}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mcp_service.jsonsetting import json_object

NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")  # no "_": it ends the namespace
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 300.0
EXAMPLE = '{"docs": {"url": "https://docs.example.com/mcp", "auth": "none"}}'


@dataclass(frozen=True, slots=True)
class BearerEnv:
    """A static token, read from the environment variable `variable` at start-up."""

    variable: str


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """An OAuth client-credentials grant; the secret is read from `secret_variable`."""

    token_url: str
    client_id: str
    secret_variable: str
    scopes: tuple[str, ...] = ()


Auth = BearerEnv | ClientCredentials | None  # None: "none", no credential at all


@dataclass(frozen=True, slots=True)
class Upstream:
    url: str
    auth: Auth = None
    timeout_seconds: float = DEFAULT_TIMEOUT

    @property
    def variables(self) -> tuple[str, ...]:
        """The environment variables its credential is read from."""
        if isinstance(self.auth, BearerEnv):
            return (self.auth.variable,)
        if isinstance(self.auth, ClientCredentials):
            return (self.auth.secret_variable,)
        return ()


def parse_upstreams(value: Any) -> dict[str, Upstream]:
    """UPSTREAMS as JSON text or an already-decoded object; ValueError with one message."""
    value = json_object(value, EXAMPLE)
    return {namespace: _upstream(namespace, entry) for namespace, entry in value.items()}


def _upstream(namespace: Any, entry: Any) -> Upstream:
    if isinstance(entry, Upstream):
        return entry
    if not isinstance(namespace, str) or not NAMESPACE.match(namespace):
        raise ValueError(
            f"{namespace!r} is not a namespace: letters, digits and '-', up to 40 characters"
        )
    if not isinstance(entry, dict):
        raise ValueError(f"{namespace}: must be an object such as {EXAMPLE}")
    unknown = set(entry) - {"url", "auth", "timeout_seconds"}
    if unknown:
        raise ValueError(f"{namespace}: unknown field(s) {', '.join(sorted(unknown))}")
    return Upstream(
        url=_url(f"{namespace}.url", entry.get("url")),
        auth=_auth(namespace, entry.get("auth", "none")),
        timeout_seconds=_timeout(namespace, entry.get("timeout_seconds", DEFAULT_TIMEOUT)),
    )


def _url(where: str, url: Any) -> str:
    if not isinstance(url, str):
        raise ValueError(f"{where}: an absolute http or https URL is required")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"{where}: not an absolute http or https URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}: not an absolute http or https URL")
    if parts.username or parts.password:
        raise ValueError(f"{where}: credentials go in auth, never in the URL")
    return url


def _timeout(namespace: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{namespace}.timeout_seconds: a number of seconds")
    if not 0 < value <= MAX_TIMEOUT:
        raise ValueError(f"{namespace}.timeout_seconds: more than 0 and at most {MAX_TIMEOUT:g}")
    return float(value)


def _variable(where: str, value: Any) -> str:
    if not isinstance(value, str) or not VARIABLE.match(value):
        raise ValueError(f"{where}: the name of an environment variable")
    return value


def _auth(namespace: str, auth: Any) -> Auth:
    where = f"{namespace}.auth"
    if auth == "none":
        return None
    if isinstance(auth, dict) and set(auth) == {"bearer_env"}:
        return BearerEnv(_variable(f"{where}.bearer_env", auth["bearer_env"]))
    if isinstance(auth, dict) and set(auth) == {"client_credentials"}:
        grant = auth["client_credentials"]
        fields = {"token_url", "client_id", "client_secret_env", "scopes"}
        if not isinstance(grant, dict) or not {"token_url", "client_id"} <= set(grant) <= fields:
            raise ValueError(
                f"{where}.client_credentials: token_url, client_id, client_secret_env and "
                "optionally scopes"
            )
        client_id = grant["client_id"]
        if not isinstance(client_id, str) or not client_id:
            raise ValueError(f"{where}.client_credentials.client_id: a non-empty string")
        scopes = grant.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
            raise ValueError(f"{where}.client_credentials.scopes: a list of scope names")
        return ClientCredentials(
            token_url=_url(f"{where}.client_credentials.token_url", grant["token_url"]),
            client_id=client_id,
            secret_variable=_variable(
                f"{where}.client_credentials.client_secret_env", grant.get("client_secret_env")
            ),
            scopes=tuple(scopes),
        )
    raise ValueError(
        f'{where}: "none", {{"bearer_env": "VAR"}} or {{"client_credentials": {{...}}}}'
    )
