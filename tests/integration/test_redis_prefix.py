"""Every key a service writes or reads, and its pub/sub channel, lie under REDIS_KEY_PREFIX, so
several deployments (or tests) can share one Redis. The service runs against the real Redis
through a proxy that records each command it sends; Redis itself says which of a command's
arguments are keys (COMMAND GETKEYS), so no key is missed, however the command spells it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import hiredis
import pytest
import redis

from cache.redisline import RedisAddress
from mcp_service.revoke import revoke
from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.service import make_service, make_settings
from tests.support.tokens import TokenFactory, rsa_key

pytestmark = pytest.mark.redis

ADD = rpc("tools/call", {"name": "add", "arguments": {"a": 5, "b": 3}})
SECRET = "prefix-test-secret-" + "x" * 20
CHANNEL_COMMANDS = {b"SUBSCRIBE", b"PSUBSCRIBE", b"PUBLISH"}


class RecordingProxy:
    """Forwards to the real Redis and keeps every command its clients sent."""

    def __init__(self, upstream: RedisAddress) -> None:
        self.upstream = upstream
        self.commands: list[list[bytes]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/{self.upstream.db}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        parser = hiredis.Reader()

        async def requests() -> None:
            while data := await reader.read(65536):
                parser.feed(data)
                while (command := parser.gets()) is not False:
                    self.commands.append(command)
                up_writer.write(data)

        async def replies() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)

        try:
            await asyncio.gather(requests(), replies())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()
            up_writer.transport.abort()


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[RecordingProxy]:
    recording = RecordingProxy(RedisAddress.from_url(redis_url))
    await recording.start()
    yield recording
    await recording.stop()


def names(commands: list[list[bytes]], redis_url: str) -> tuple[set[str], set[str]]:
    """The keys and the channels the recorded commands named."""
    client = redis.Redis.from_url(redis_url)
    keys: set[str] = set()
    channels: set[str] = set()
    try:
        for command in commands:
            verb = command[0].upper()
            if verb in CHANNEL_COMMANDS:
                channels.update(part.decode() for part in command[1:2])
                continue
            try:
                found = client.command_getkeys(*command)
            except redis.ResponseError:  # no key arguments (PING, SCRIPT LOAD, MULTI, ...)
                continue
            keys.update(key if isinstance(key, str) else key.decode() for key in found)
    finally:
        client.close()
    return keys, channels


async def until_status(client: Any, headers: dict[str, str], status: int) -> None:
    deadline = time.monotonic() + 5
    while (await client.post("/mcp", json=ADD, headers=headers)).status_code != status:
        assert time.monotonic() < deadline, f"never answered {status}"
        await asyncio.sleep(0.05)


async def test_every_key_and_channel_is_under_the_prefix(
    proxy: RecordingProxy, redis_url: str, redis_prefix: str
) -> None:
    settings = {
        "redis_url": proxy.url,
        "redis_key_prefix": redis_prefix,
        "token_cache_secret": SECRET,
        "token_cache_l2": True,
        "rate_limit": "100/minute",
    }
    service = make_service(**settings)
    factory = TokenFactory()
    jti = "prefix-test-jti"
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {factory.token(jti=jti)}"}
    stranger = factory.token(key=rsa_key("stranger"), headers={"kid": "not-published"})
    async with running(service.app) as client:
        assert (await client.post("/mcp", json=ADD, headers=headers)).status_code == 200
        unknown = {**MCP_HEADERS, "Authorization": f"Bearer {stranger}"}
        # An unknown kid refreshes the keys and leaves the kid-miss marker, unless the
        # request joined a refresh already under way (a warm-up): then it is asked again.
        r = redis.Redis.from_url(redis_url)
        for _ in range(5):
            assert (await client.post("/mcp", json=ADD, headers=unknown)).status_code == 401
            if any(b":kidmiss" in key for key in r.scan_iter(match=f"{redis_prefix}:*")):
                break
            await asyncio.sleep(0.2)
        await revoke(make_settings(**settings), "jti", jti, "prefix test")
        await until_status(client, headers, 401)

    keys, channels = names(proxy.commands, redis_url)
    written = {
        key.decode() for key in redis.Redis.from_url(redis_url).scan_iter(match=f"{redis_prefix}:*")
    }
    features = {
        "jwks document": ":jwks:",
        "kid-miss marker": ":kidmiss",
        "verified token": ":tok:",
        "revocations": ":{rev}:",
        "rate limit": ":rl:",
    }
    missing = [what for what, part in features.items() if not any(part in k for k in written)]
    assert not missing, f"nothing written for {missing}: {sorted(written)}"
    assert keys >= written
    assert [key for key in keys if not key.startswith(f"{redis_prefix}:")] == []
    assert channels == {f"{redis_prefix}:v1:revocations"}
