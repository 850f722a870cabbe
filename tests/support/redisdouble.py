"""Redis stand-ins on loopback whose failures a test switches on and off.

`FakeRedis` speaks enough RESP for the rate-limit script (it counts per key, with no clock) and
needs no Redis; `RedisProxy` forwards to a real Redis. Both can be put in three modes: "up",
"hang" (connections are accepted and read but never answered: a black-holed or stalled Redis)
and "down" (existing connections are cut and new ones refused).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import hiredis

from tests.support.processes import free_port

Mode = str  # "up" | "hang" | "down"


class _Switchable:
    def __init__(self) -> None:
        self.port = free_port()
        self.mode: Mode = "up"
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        await self.set_mode("down")

    async def set_mode(self, mode: Mode) -> None:
        if mode == "down":
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
        elif self._server is None:
            await self.start()
        self.mode = mode

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self.serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(_encode(item) for item in value)
    raise TypeError(value)


class FakeRedis(_Switchable):
    """Answers SCRIPT LOAD, EVALSHA/EVAL of the rate-limit script (counting per key, no time),
    PING, AUTH and SELECT. `forget_scripts` makes EVALSHA answer NOSCRIPT."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[bytes, int] = {}
        self.commands: list[bytes] = []
        self.sessions: list[list[bytes]] = []  # the verbs of each connection, in order
        self.forget_scripts = False

    def session_with(self, verb: bytes) -> list[bytes]:
        """The verbs of the first connection that sent `verb` (other clients may connect too)."""
        return next(session for session in self.sessions if verb in session)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader()
        session: list[bytes] = []
        self.sessions.append(session)
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                if self.mode != "up":
                    continue  # hang: read, never answer
                session.append(command[0].upper())
                writer.write(self.answer(command))

    def answer(self, command: list[bytes]) -> bytes:
        verb = command[0].upper()
        self.commands.append(verb)
        if verb == b"SCRIPT":
            return _encode(hashlib.sha1(command[2], usedforsecurity=False).hexdigest().encode())
        if verb == b"EVALSHA" and self.forget_scripts:
            return b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
        if verb in (b"EVALSHA", b"EVAL"):
            return _encode(self._script(command))
        if verb == b"PING":
            return b"+PONG\r\n"
        return b"+OK\r\n"

    def _script(self, command: list[bytes]) -> list[int]:
        nkeys = int(command[2])
        keys = command[3 : 3 + nkeys]
        args = [int(a) for a in command[3 + nkeys :]]
        cost, limits = args[0], list(zip(args[1::2], args[2::2], strict=True))
        currents = keys[0::2]
        counts = [self.counts.get(key, 0) for key in currents]
        admitted = all(c + cost <= amount for c, (amount, _) in zip(counts, limits, strict=True))
        reply = [int(admitted)]
        for key, count, (_, window) in zip(currents, counts, limits, strict=True):
            if admitted:
                count = self.counts[key] = count + cost
            reply += [0, count, 2 * window]
        return reply


class RedisProxy(_Switchable):
    """Forwards to a real Redis while "up"."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        super().__init__()
        self.upstream = (upstream_host, upstream_port)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.add(up_writer)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if self.mode == "up":
                    sink.write(data)

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.transport.abort()
