"""The HTTP/1.1 protocol `serve` runs: uvicorn's httptools protocol, bounded.

uvicorn with httptools sets no limit on the request head and no deadline on a connection that
sends nothing; h11 has limits but costs instructions on every request. This subclass keeps
httptools and adds the bounds where the parser already holds the data, before any code of
ours sees a request:

* the request target (`MAX_REQUEST_LINE_BYTES`, 414), the number of header fields
  (`MAX_HEADER_COUNT`, 431) and the whole head (`MAX_HEADER_BYTES` plus the request line's
  allowance, 431): a read that would carry a head past that is fed to the parser only up to
  it, so an endless header is cut there and no more than that is ever parsed;
* the head must arrive within `HEADER_TIMEOUT_SECONDS`, from the accept on a new connection
  and from its first byte on a kept-alive one (an idle kept-alive connection keeps the
  keep-alive timeout); a silent or slow head is closed;
* a body must arrive within `BODY_TIMEOUT_SECONDS` of the end of its head: past that the
  request ends with 408 and the app sees the client gone (so its in-flight slot is freed);
* at most `MAX_CONNECTIONS` connections per process: past that a new connection is closed at
  once, with a log line, so descriptors stay for Redis, the IdP and the requests in progress.

The usual request (a whole head in one read, a small body with it) takes no timer and a few
attribute reads (docs/performance.md, "The edge").
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mcp_service.refusals import Refusal, problem
from mcp_service.settings import Settings

log = logging.getLogger("mcp_service.edge")

PROTOCOL = "mcp_service.edge:BoundedHttpToolsProtocol"  # uvicorn's `http=`, by import path
MAX_REQUEST_LINE_BYTES = 8192
DESCRIPTOR_HEADROOM = 64  # for Redis, the IdP, logs and the listening sockets


def default_max_connections() -> int:
    """The descriptor limit (RLIMIT_NOFILE, soft) less a headroom of 64 or a tenth."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1_048_576
    return max(1, soft - max(DESCRIPTOR_HEADROOM, soft // 10))


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_header_bytes: int = 32_768
    max_header_count: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 0  # 0: default_max_connections()
    max_request_line: int = MAX_REQUEST_LINE_BYTES


def configure_edge(settings: Settings) -> None:
    """Bound every connection this process accepts from now on by `settings` (call once,
    before serving: the CLI for one process, the app factory in each worker)."""
    BoundedHttpToolsProtocol.configure(
        EdgeLimits(
            max_header_bytes=settings.max_header_bytes,
            max_header_count=settings.max_header_count,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_connections=settings.max_connections,
        )
    )


def _wire(refusal: Refusal) -> bytes:
    """A refusal as the bytes of an HTTP/1.1 response that closes the connection."""
    lines = [b"HTTP/1.1 %d %s" % (refusal.status, _PHRASES[refusal.status])]
    lines += [name + b": " + value for name, value in refusal.headers]
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + refusal.body


_PHRASES = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}
HEAD_TOO_LARGE = _wire(
    problem(431, "header_too_large", "The request head is larger than this server accepts.")
)
TOO_MANY_HEADERS = _wire(
    problem(431, "too_many_headers", "The request has more header fields than this server accepts.")
)
LINE_TOO_LONG = _wire(
    problem(414, "request_line_too_long", "The request line is longer than this server accepts.")
)
HEAD_TIMEOUT = _wire(problem(408, "header_timeout", "The request head did not arrive in time."))
BODY_TIMEOUT = _wire(problem(408, "body_timeout", "The request body did not arrive in time."))


# uvicorn's callbacks, called by name: `super()` costs a frame lookup per request.
_base_headers_complete = HttpToolsProtocol.on_headers_complete
_base_message_complete = HttpToolsProtocol.on_message_complete


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the answer is already chosen."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above. `configure()` sets the limits of
    every connection this process accepts from then on (once, before serving).

    Each bound is checked where the data already is, so the usual request pays a few
    attribute reads (docs/performance.md, "The edge"): the head's bytes as they are fed (a
    read that would carry the head past the bound is fed only up to it), the header count
    and the request target's length once the head is complete (`len()` of what uvicorn
    collected), the deadlines by timers armed only when a read leaves a head or a body
    incomplete. uvicorn's per-header callbacks stay its own: an override of `on_header` cost
    ~1,100 instructions a header.
    """

    # The bounds' state lives in slots, not in the instance __dict__: uvicorn's protocol keeps
    # ~30 attributes there, and past that CPython 3.11 stops specialising attribute access on
    # the instance (measured: 4,400 instructions a request, on uvicorn's code as on ours).
    __slots__ = (
        "_awaiting_head",
        "_body_timer",
        "_fed",
        "_head_timer",
        "_max_count",
        "_max_fed",
        "_max_line",
        "_refusal",
    )

    limits: ClassVar[EdgeLimits] = EdgeLimits()
    _max_connections: ClassVar[int] = 0
    _refused_logged_at: ClassVar[float] = 0.0

    @classmethod
    def configure(cls, limits: EdgeLimits) -> None:
        cls.limits = limits
        cls._max_connections = limits.max_connections or default_max_connections()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.limits
        self._max_fed = limits.max_header_bytes + limits.max_request_line  # the whole head
        self._max_count = limits.max_header_count
        self._max_line = limits.max_request_line
        self._awaiting_head = True  # no complete head since the last message (or the accept)
        self._fed = 0  # bytes fed while awaiting a head
        self._refusal: bytes | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # Connections ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cap = self._max_connections or default_max_connections()
        if len(self.server_state.connections) >= cap:
            self._log_refused(cap)
            transport.abort()
            return
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self.transport is None:  # refused in connection_made: never counted, nothing set up
            return
        super().connection_lost(exc)

    @classmethod
    def _log_refused(cls, cap: int) -> None:
        now = time.monotonic()
        if now - cls._refused_logged_at >= 1.0:  # one line a second at most, under a flood
            cls._refused_logged_at = now
            log.warning(
                "connection refused: %d connections open (MAX_CONNECTIONS)",
                cap,
                extra={"max_connections": cap},
            )

    # Reading ----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """uvicorn's own, with the head's bytes counted and the two deadlines armed when a
        read leaves a head or a body incomplete (the usual request arms neither)."""
        self._unset_keepalive_if_required()
        if self._awaiting_head:
            fed = self._fed + len(data)
            if fed > self._max_fed:
                self._feed_to_the_bound(data)
                return
            self._fed = fed
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:  # a callback of ours stopped the parser
                self._refuse(self._refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._awaiting_head:
            if self._head_timer is None and self._fed:  # the next head has begun
                self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)
        elif self._body_timer is None and self.cycle.more_body:
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)

    def _feed_to_the_bound(self, data: bytes) -> None:
        """A read that would take the head past its bound: the parser gets the bytes up to
        the bound only; a head still incomplete there is refused, else the rest is read on."""
        room = self._max_fed - self._fed
        cycle = self.cycle
        self.data_received(data[:room])
        if self.transport.is_closing():
            return
        if self.cycle is cycle:  # no head completed within the bound
            long_line = not self.headers and len(self.url) > self._max_line
            self._refuse(LINE_TOO_LONG if long_line else HEAD_TOO_LARGE)
            return
        self.data_received(data[room:])

    # Parser callbacks (the head's bounds) -----------------------------------------------------

    def on_headers_complete(self) -> None:
        if len(self.headers) > self._max_count:
            self._stop(TOO_MANY_HEADERS)
        if len(self.url) > self._max_line:
            self._stop(LINE_TOO_LONG)
        self._awaiting_head = False
        self._fed = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        _base_headers_complete(self)

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        _base_message_complete(self)

    # Refusing ---------------------------------------------------------------------------------

    def _stop(self, refusal: bytes) -> None:
        self._refusal = refusal
        raise _Refused

    def _refuse(self, refusal: bytes) -> None:
        """Answer with `refusal` and close, whatever was under way: no app runs for it."""
        self._refusal = refusal
        self._cancel_timers()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app, if any, sees the client gone
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        if not self.transport.is_closing():
            self.transport.write(refusal)
            self.transport.close()

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._fed == 0 and self.cycle is None:
            self.transport.close()  # a connection that never said anything: nothing to answer
        else:
            self._refuse(HEAD_TIMEOUT)

    def _body_late(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self._refuse(BODY_TIMEOUT)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
