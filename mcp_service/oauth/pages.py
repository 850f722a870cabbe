"""The HTML pages people see (the embedded issuer's login, the facade's consent) and the
headers and cookies around them: never framed, never cached, cookies `__Host-` prefixed except
on loopback http, where a browser refuses that prefix (it needs `Secure`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import escape
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse, Response

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
    "input,button{font-size:1rem;margin:.3rem 0;padding:.4rem}code{word-break:break-all}"
)


_HOST_SOURCE = re.compile(r"https?://[a-z0-9.-]+(:[0-9]+)?")


def form_target(url: str) -> str:
    """The CSP source a form's navigation to `url` needs: its origin, or for what a host
    source cannot name (a private-use scheme such as `cursor:`, an IPv6 literal) its scheme."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return origin if _HOST_SOURCE.fullmatch(origin) else f"{parts.scheme.lower()}:"


def page(
    title: str, body: str, status: int = 200, *, form_targets: Iterable[str] | None = None
) -> Response:
    """A page whose `body` is HTML already escaped by the caller. With `form_targets`, its
    forms may lead (redirects included, as browsers check them) to this origin and those
    URLs' origins only (CSP `form-action`)."""
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f'</title><meta name="viewport" content="width=device-width"><style>{_STYLE}</style>'
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    headers = PAGE_HEADERS
    if form_targets is not None:
        sources = " ".join(dict.fromkeys(form_target(url) for url in form_targets))
        policy = f"{PAGE_HEADERS['Content-Security-Policy']}; form-action 'self' {sources}"
        headers = {**PAGE_HEADERS, "Content-Security-Policy": policy.rstrip()}
    return HTMLResponse(html, status, headers=headers)


def hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )


def cookie_name(name: str, secure: bool) -> str:
    """`__Host-<name>` over https; the plain name on loopback http, and only there."""
    return f"__Host-{name}" if secure else name


def set_cookie(response: Response, name: str, value: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(
        cookie_name(name, secure),
        value,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
