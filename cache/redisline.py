"""One pipelined Redis connection for the request path, a few times cheaper than redis-py's.

The per-subject limit makes one Redis round trip per request, so the client's own CPU cost is
paid on every MCP call. Measured under callgrind (bench/ratelimit.py --instructions --only
subject): the script's EVALSHA costs ~384 k instructions through redis-py's asyncio client
(connection pool, command objects, parser layers), about 10 % of a whole FastMCP tool call, and
~68 k through this connection. It is deliberately small: commands are written as they come and
replies are matched first-in first-out (Redis answers in order), so concurrent requests share
one connection without a pool or a lock.

Every command is bounded by one watchdog timer for the whole connection, not an
`asyncio.timeout` per command (the same bench: ~100 k instructions a check with one, ~68 k with
the watchdog). It fails all pending commands and drops the connection when the oldest has
waited longer than `timeout` (a Redis that stops answering is broken for everyone; its replies
can no longer be matched to requests). The owner's breaker then opens, and
`cache.breaker.Reconnect` opens a new connection with `RedisLine.open` -- never on a request's
time. RESP2, AUTH, SELECT and TLS (`rediss://`, with the process's one `cache.tls.RedisTls`)
are supported; one connection talks to one node (cache.cluster keeps one per primary).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

from cache.errors import RespError, RespReplyError, RespUnavailable
from cache.tls import describe


@dataclass(frozen=True, slots=True)
class RedisAddress:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str = ""
    db: int = 0
    username: str = ""
    password: str = ""
    tls: bool = False
    # The TLS every connection to this Redis uses (cache.tls.RedisTls.context); None with
    # `tls`: the system trust store, verified.
    context: ssl.SSLContext | None = field(default=None, compare=False)

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """`redis://[[user]:password@]host[:port][/db]`, `rediss://...`, `unix:///path?db=N`."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("not a Redis URL (redis://, rediss:// or unix://)")
        if parts.scheme == "unix":
            db_text = query.get("db", ["0"])[0]
        else:
            db_text = parts.path.lstrip("/") or query.get("db", ["0"])[0]
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            path=parts.path if parts.scheme == "unix" else "",
            db=int(db_text or 0),
            username=unquote(parts.username or ""),
            password=unquote(parts.password or query.get("password", [""])[0]),
            tls=parts.scheme == "rediss",
        )


def pack(*parts: bytes | str | int) -> bytes:
    """One command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RedisLine(asyncio.Protocol):
    """A connected, pipelined RESP2 connection. Create it with `await RedisLine.open(...)`."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader()
        self._pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.broken = False

    @classmethod
    async def open(cls, address: RedisAddress, *, reply_timeout: float) -> RedisLine:
        """Connect, authenticate and select the database. The caller bounds the whole with
        `asyncio.timeout` (a connect to a black-holed address waits for the OS otherwise)."""
        loop = asyncio.get_running_loop()
        line: RedisLine | None = None
        try:
            if address.path:
                _, line = await loop.create_unix_connection(
                    lambda: cls(reply_timeout), address.path
                )
            else:
                context = None
                if address.tls:
                    context = address.context or ssl.create_default_context()
                _, line = await loop.create_connection(
                    lambda: cls(reply_timeout), address.host, address.port, ssl=context
                )
            if address.password:
                credentials = (address.username, address.password)
                await line.call(pack(b"AUTH", *(c for c in credentials if c)))
            if address.db:
                await line.call(pack(b"SELECT", address.db))
        except (OSError, RespError) as exc:
            if line is not None:
                line.close()
            detail = str(exc) if isinstance(exc, RespReplyError) else describe(exc)
            raise RespUnavailable(f"cannot connect to Redis: {detail}") from None
        except BaseException:  # cancelled by the caller's timeout
            if line is not None:
                line.close()
            raise
        return line

    def call(self, command: bytes) -> asyncio.Future[Any]:
        """Send one packed command; the future resolves to its reply or a `RespError`."""
        future = self._loop.create_future()
        if self.broken or self._transport is None:
            future.set_exception(RespUnavailable("Redis connection is closed"))
            return future
        deadline = self._loop.time() + self.timeout
        self._pending.append((future, deadline))
        self._transport.write(command)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(deadline, self._check_deadline)
        return future

    def close(self) -> None:
        self._fail(RespUnavailable("Redis connection closed"))

    # asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        pending = self._pending
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError:
                self._fail(RespUnavailable("Redis protocol error"))
                return
            if reply is False:
                return
            if not pending:
                self._fail(RespUnavailable("a reply nobody asked for"))
                return
            future, _ = pending.popleft()
            if future.done():  # the caller gave up (cancelled); the reply still takes its turn
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(RespReplyError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RespUnavailable("Redis connection lost"))

    # ---------------------------------------------------------------------------------------------

    def _check_deadline(self) -> None:
        self._watchdog = None
        if not self._pending:
            return
        _, deadline = self._pending[0]
        if deadline <= self._loop.time():
            self._fail(RespUnavailable(f"no reply from Redis within {self.timeout:g} s"))
        else:
            self._watchdog = self._loop.call_at(deadline, self._check_deadline)

    def _fail(self, error: RespError) -> None:
        """Fail every pending command and drop the connection: it cannot be trusted again."""
        self.broken = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._pending:
            future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(error)
        if self._transport is not None:
            self._transport.abort()
            self._transport = None
