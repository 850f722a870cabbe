"""The one writer of refusals: every layer that answers instead of the app answers through here.

Three shapes, each with its content type and `Cache-Control: no-store`:

* an OAuth error (RFC 6749 5.2 / RFC 6750 3.1): `{"error", "error_description", "reason"}` as
  `application/json`, what token endpoints and bearer authentication answer;
* an RFC 9457 problem: `{"type", "title", "status", "detail", "reason", ...}` as
  `application/problem+json`, what limits and guards answer (429, 413, 503, ...);
* a bearer challenge: the `WWW-Authenticate` value beside an OAuth error, its parameters
  quoted so that nothing a request sent can break out of them.

Every body carries `reason`, the same bounded code the metrics and logs use. A `Refusal` is
built once where it does not depend on the request (the in-flight cap's 503 is a constant), so
sending it costs two `send` calls and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Send

Headers = tuple[tuple[bytes, bytes], ...]

OAUTH_JSON = b"application/json"
PROBLEM_JSON = b"application/problem+json"
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
REDUCED_CAPACITY = "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
ABOUT_BLANK = "about:blank"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A complete answer: status, body and headers, ready to send."""

    status: int
    body: bytes
    headers: Headers

    async def send(self, send: Send, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """Write it as an ASGI response; `extra` headers (e.g. rate-limit fields) go last."""
        headers = [*self.headers, *extra] if extra else list(self.headers)
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})

    def response(self) -> Response:
        """The same answer as a Starlette response, for endpoints."""
        content_type = dict(self.headers)[b"content-type"].decode()
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in self.headers
            if name not in (b"content-type", b"content-length")
        }
        return Response(self.body, self.status, headers=headers, media_type=content_type)


def refusal(
    status: int,
    content_type: bytes,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> Refusal:
    payload = json.dumps(body).encode()
    raw: list[tuple[bytes, bytes]] = [
        (b"content-type", content_type),
        (b"content-length", b"%d" % len(payload)),
        (b"cache-control", b"no-store"),
    ]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return Refusal(status, payload, tuple(raw))


def oauth_error(
    status: int,
    error: str,
    description: str,
    *,
    reason: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Refusal:
    """An OAuth error body (`error`, `error_description`, and our `reason` code)."""
    body = {"error": error, "error_description": description}
    if reason is not None:
        body["reason"] = reason
    return refusal(status, OAUTH_JSON, body, headers)


def problem(
    status: int,
    reason: str,
    detail: str,
    *,
    kind: str = ABOUT_BLANK,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **members: Any,
) -> Refusal:
    """An RFC 9457 problem; `members` are extension members (e.g. `violated-policies`)."""
    body: dict[str, Any] = {
        "type": kind,
        "title": title or _TITLES.get(status, "Request refused"),
        "status": status,
        "detail": detail,
        "reason": reason,
    }
    body.update({name.replace("_", "-"): value for name, value in members.items()})
    return refusal(status, PROBLEM_JSON, body, headers)


_TITLES = {
    400: "Bad request",
    408: "Request timeout",
    413: "Content too large",
    429: "Too many requests",
    431: "Request header fields too large",
    503: "Temporarily unavailable",
}


def bearer_challenge(params: Iterable[tuple[str, str]]) -> str:
    """`Bearer k="v", ...` (RFC 6750 3): each value a quoted-string, with `"` and `\\`
    escaped and anything outside visible ASCII and space dropped, so no value a request
    supplied can end the parameter early or add one."""
    return "Bearer " + ", ".join(f'{name}="{quote(value)}"' for name, value in params)


def quote(value: str) -> str:
    """The inside of an RFC 9110 quoted-string for `value`."""
    kept = (c for c in value if c == "\t" or " " <= c <= "~")
    return "".join("\\" + c if c in '"\\' else c for c in kept)
