"""Redirect URIs: which a client may register, and which a request may name.

Registration reuses FastMCP's rules per `application_type` (`web`: https on a real host;
`native`: http only to loopback, private-use schemes such as `cursor://` allowed; never
`javascript:`, `data:`, `file:`); a fragment or userinfo is refused. A request must name a
registered URI exactly, except for the port of a loopback `http` URI (RFC 8252 7.3: a native
app listens on whatever port it got).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastmcp.server.auth.redirect_validation import (
    is_loopback_host,
    is_redirect_uri_allowed_for_application_type,
)

MAX_REDIRECT_URI = 2000


def registration_problem(uri: str, application_type: str) -> str | None:
    """Why `uri` may not be registered for this application type, or None."""
    if len(uri) > MAX_REDIRECT_URI:
        return "a redirect URI is too long"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return "a redirect URI does not parse"
    if not parts.scheme or parts.fragment or "#" in uri:
        return "a redirect URI must be absolute and carry no fragment"
    if parts.username is not None or parts.password is not None or "\\" in uri:
        return "a redirect URI must carry no user information"
    if parts.scheme in ("http", "https") and not parts.hostname:
        return "an http(s) redirect URI must name a host"
    if not is_redirect_uri_allowed_for_application_type(uri, application_type):
        if application_type == "web":
            return "a web client's redirect URIs must be https on a host other than loopback"
        return "a native client's http redirect URIs must be loopback"
    return None


def matches(requested: str, registered: Iterable[str]) -> bool:
    """Whether `requested` is one of `registered`, exactly or but for a loopback port."""
    registered = list(registered)
    if requested in registered:
        return True
    try:
        asked = urlsplit(requested)
        asked_port = asked.port
    except ValueError:
        return False
    if asked.scheme != "http" or not is_loopback_host(asked.hostname) or asked.username:
        return False
    for uri in registered:
        try:
            known = urlsplit(uri)
            known.port  # noqa: B018
        except ValueError:
            continue
        if (
            known.scheme == "http"
            and known.hostname == asked.hostname
            and is_loopback_host(known.hostname)
            and known.username is None
            and (known.path, known.query) == (asked.path, asked.query)
            and not asked.fragment
            and asked_port is not None
        ):
            return True
    return False
