"""The rate-limit counters on a Redis Cluster: one RESP connection per primary, slots mapped.

redis-py's `RedisCluster.evalsha` costs ~278 k instructions a check against ~27 k for one
`RedisLine` (measured under callgrind), so cluster mode keeps the hand-written connection and
adds only what a cluster needs: the slot map (`CLUSTER SLOTS`, read from the node REDIS_URL
names), a `RedisLine` to each primary with the script loaded, and each caller's slot computed
once, when its command is packed. `MOVED` to a connected primary updates the map and retries
there; `ASK` sends `ASKING` and the command to the importing node; anything else (a slot moved
to a node not connected, `CLUSTERDOWN`, `READONLY`, `TRYAGAIN`, a lost connection) raises, and
the owner's `Reconnect` calls `connect`, which reads the map again. Chosen once, when the
service is built (mcp_service.stages): the standalone path is `cache.windows.RedisWindows`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from redis.crc import key_slot

from cache.errors import RespError, RespReplyError, RespUnavailable
from cache.redisline import RedisAddress, RedisLine, pack
from cache.windows import (
    MAX_COMMANDS,
    SCRIPT,
    SCRIPT_SHA,
    Limit,
    Outcome,
    open_with_script,
    outcome_of,
    script_args,
    window_keys,
)

SLOTS = 16_384
Node = tuple[str, int]


class ClusterWindows:
    """`cache.windows.RedisWindows` for a cluster (the `SharedWindows` the limiter holds)."""

    def __init__(
        self, address: RedisAddress, *, prefix: str, reply_timeout: float, connect_timeout: float
    ) -> None:
        self.address = address
        self.prefix = prefix.encode()
        self.reply_timeout = reply_timeout
        self.connect_timeout = connect_timeout
        self._lines: dict[Node, RedisLine] = {}
        self._owners: list[Node] = []  # slot -> the primary serving it
        self._commands: dict[tuple[str, tuple[Limit, ...], int], tuple[bytes, int]] = {}

    @property
    def ready(self) -> bool:
        """Connected to every primary (readiness checks each one the limit needs)."""
        return bool(self._owners) and all(not line.broken for line in self._lines.values())

    @property
    def primaries(self) -> list[Node]:
        return sorted(self._lines)

    async def connect(self) -> None:
        """Read the slot map from the configured node (else from any primary known), open a
        connection with the script loaded to each primary; raises `RespUnavailable`."""
        seeds = [(self.address.host, self.address.port), *self._lines]
        failure: RespError = RespUnavailable("cannot connect to Redis")
        for seed in dict.fromkeys(seeds):
            try:
                owners = await self._slot_map(seed)
                break
            except RespError as exc:
                failure = exc
        else:
            raise failure
        nodes = sorted(set(owners))
        opened = await asyncio.gather(*(self._open(node) for node in nodes), return_exceptions=True)
        errors = [line for line in opened if isinstance(line, BaseException)]
        if errors:
            for line in opened:
                if isinstance(line, RedisLine):
                    line.close()
            error = errors[0]
            raise error if isinstance(error, RespError) else RespUnavailable(str(error))
        old, self._lines = self._lines, dict(zip(nodes, opened, strict=True))  # type: ignore[arg-type]
        self._owners = owners
        for line in old.values():
            line.close()

    def close(self) -> None:
        for line in self._lines.values():
            line.close()
        self._lines = {}
        self._owners = []

    async def hit(self, tag: str, limits: tuple[Limit, ...], cost: int = 1) -> Outcome:
        entry = self._commands.get((tag, limits, cost))
        if entry is None:  # packed, and its slot computed, once per caller, limit set and cost
            if len(self._commands) >= MAX_COMMANDS:
                self._commands.clear()
            base = self.prefix + tag.encode()
            entry = (self._command(b"EVALSHA", SCRIPT_SHA, base, limits, cost), key_slot(base))
            self._commands[(tag, limits, cost)] = entry
        command, slot = entry
        owners = self._owners
        line = self._lines.get(owners[slot]) if owners else None
        if line is None or line.broken:
            raise RespUnavailable("not connected to the Redis cluster")
        try:
            reply = await line.call(command)
        except RespReplyError as exc:
            reply = await self._answer(str(exc), line, slot, tag, limits, cost)
        return outcome_of(reply, limits)

    async def _answer(
        self, error: str, line: RedisLine, slot: int, tag: str, limits: tuple[Limit, ...], cost: int
    ) -> Any:
        """Follow a redirection, or reload a forgotten script; anything else raises."""
        command = self._commands[(tag, limits, cost)][0]
        verb = error.split(" ", 1)[0]
        if verb == "NOSCRIPT":  # the node restarted and forgot it: its text loads it again
            base = self.prefix + tag.encode()
            return await line.call(self._command(b"EVAL", SCRIPT, base, limits, cost))
        if verb in ("MOVED", "ASK"):
            node = _node(error.split(" ")[2])
            target = self._lines.get(node)
            if target is None or target.broken:
                raise RespUnavailable(f"slot {slot} is served by a node not connected: {verb}")
            if verb == "MOVED":  # a failover or a resharding: the slot lives there now
                self._owners[slot] = node
                return await target.call(command)
            # Pipelined: ASKING, then the command; both answers awaited, so neither failure is
            # left unretrieved.
            answers: tuple[Any, ...] = await asyncio.gather(
                target.call(pack(b"ASKING")), target.call(command), return_exceptions=True
            )
            for answer in answers:
                if isinstance(answer, BaseException):
                    raise answer
            return answers[1]
        line.close()  # READONLY, CLUSTERDOWN, TRYAGAIN, LOADING...: reconnect before trusting it
        raise RespUnavailable(f"Redis cluster refused the rate-limit script: {verb}")

    def _command(
        self, verb: bytes, script: bytes, base: bytes, limits: tuple[Limit, ...], cost: int
    ) -> bytes:
        keys = window_keys(base, limits)
        return pack(verb, script, len(keys), *keys, *script_args(limits, cost))

    async def _open(self, node: Node) -> RedisLine:
        return await open_with_script(
            dataclasses.replace(self.address, host=node[0], port=node[1]),
            reply_timeout=self.reply_timeout,
            connect_timeout=self.connect_timeout,
        )

    async def _slot_map(self, seed: Node) -> list[Node]:
        address = dataclasses.replace(self.address, host=seed[0], port=seed[1])
        try:
            async with asyncio.timeout(self.connect_timeout):
                line = await RedisLine.open(address, reply_timeout=self.reply_timeout)
                try:
                    ranges = await line.call(pack(b"CLUSTER", b"SLOTS"))
                finally:
                    line.close()
        except TimeoutError:
            raise RespUnavailable("cannot read the cluster's slot map: timed out") from None
        except RespReplyError as exc:
            raise RespUnavailable(f"cannot read the cluster's slot map: {exc}") from None
        owners: list[Node | None] = [None] * SLOTS
        for start, end, primary, *_replicas in ranges:
            host = primary[0].decode() if primary[0] else seed[0]
            owners[start : end + 1] = [(host, int(primary[1]))] * (end - start + 1)
        if any(owner is None for owner in owners):
            raise RespUnavailable("the Redis cluster does not serve every slot")
        return owners  # type: ignore[return-value]


def _node(text: str) -> Node:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)
