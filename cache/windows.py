"""The sliding window counter, in process and on Redis, with the same arithmetic in both.

A limit of N per W seconds keeps two counters per key: the current window's and the previous
window's. A hit of cost k is admitted when

    floor(previous * left / W) + current + k <= N

where `left` is the time left in the current window: the previous window's hits are taken as
evenly spread, and the share of them still inside the sliding span [now - W, now) counts. Two
integers per key and O(1) work per hit, without the fixed window's double burst at a boundary
and without the moving window's one entry per hit (bench/ratelimit.py compares the three).

A key's windows start at its first hit, not at clock boundaries, and on Redis all timing comes
from the server's key TTLs, so the replicas' clocks never enter into a decision. Several limits
on one key ("10/second;600/minute") are checked and consumed together: all or nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable
from importlib import resources
from typing import NamedTuple, Protocol

from cache.errors import RespReplyError, RespUnavailable
from cache.redisline import RedisAddress, RedisLine, pack

MAX_LIMITS = 4
MAX_COMMANDS = 50_000  # packed commands kept (one per caller and limit set): ~10 MB at most
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}
_ITEM = re.compile(
    r"^\s*(\d{1,9})\s*(?:/|per)\s*(\d{1,6})?\s*([a-z]+?)s?\s*$", re.IGNORECASE | re.ASCII
)


class Limit(NamedTuple):
    amount: int
    window: int  # seconds

    def __str__(self) -> str:
        return f"{self.amount}/{self.window}s"


def parse_limits(text: str) -> tuple[Limit, ...]:
    """Limits in the notation of the `limits` library: `600/minute`, `10 per 2 seconds`, several
    separated by `;` or `,`. Raises ValueError with a message fit for a settings error."""
    limits: list[Limit] = []
    for item in re.split(r"[;,]", text):
        match = _ITEM.match(item)
        unit = _UNITS.get(match.group(3).lower()) if match else None
        if match is None or unit is None:
            raise ValueError(
                f"{item.strip()!r} is not a rate limit such as 600/minute or 10 per 2 seconds "
                f"(units: {', '.join(_UNITS)})"
            )
        amount, multiples = int(match.group(1)), int(match.group(2) or 1)
        if amount < 1 or multiples < 1:
            raise ValueError(f"{item.strip()!r}: the amount and the period must be 1 or more")
        limits.append(Limit(amount, multiples * unit))
    windows = [limit.window for limit in limits]
    if len(set(windows)) != len(windows):
        raise ValueError(f"{text.strip()!r} has two limits over the same period")
    if len(limits) > MAX_LIMITS:
        raise ValueError(f"{text.strip()!r}: at most {MAX_LIMITS} limits")
    return tuple(sorted(limits, key=lambda limit: limit.window))


class Usage:
    """One limit's counters for one key, as a hit (admitted or not) left them."""

    __slots__ = ("current", "left", "limit", "previous")

    def __init__(self, limit: Limit, previous: int, current: int, left: float) -> None:
        self.limit = limit
        self.previous = previous
        self.current = current
        self.left = left  # seconds left in the current window, in (0, window]

    @property
    def used(self) -> int:
        return int(self.previous * self.left / self.limit.window) + self.current

    @property
    def remaining(self) -> int:
        return max(0, self.limit.amount - self.used)

    def wait(self, cost: int) -> float:
        """Seconds until `cost` more units fit, if nothing else is spent meanwhile (0: now)."""
        amount, window = self.limit
        room = amount - cost - self.current
        if room >= 0:
            # The previous window's share shrinks as time passes: it fits once
            # previous * left / window < room + 1.
            if self.previous == 0:
                return 0.0
            return max(0.0, self.left - (room + 1) * window / self.previous)
        # The current window alone is too full: it must roll over, then shrink in turn.
        room = amount - cost
        if room < 0:
            return self.left + window  # never fits; a window is the honest hint
        share = (room + 1) * window / self.current
        return self.left + max(0.0, window - share)

    def __repr__(self) -> str:
        return f"Usage({self.limit}, previous={self.previous}, current={self.current})"


Outcome = tuple[bool, list[Usage]]


class MemoryWindows:
    """The counters in this process: the per-IP limit, and the per-subject fallback while Redis
    is unavailable. Bounded: past `max_keys` the idle keys are dropped, then the oldest."""

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.max_keys = max_keys
        self.clock = clock
        self._windows: dict[tuple[str, int], list[float]] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def hit(self, key: str, limits: tuple[Limit, ...], cost: int = 1) -> Outcome:
        now = self.clock()
        windows = self._windows
        states: list[list[float]] = []
        usages: list[Usage] = []
        allowed = True
        for limit in limits:
            window = limit.window
            state = windows.get((key, window))
            if state is None:
                if len(windows) >= self.max_keys:
                    self._shrink(now)
                state = windows[(key, window)] = [now, 0, 0]  # [start, previous, current]
            elif now - state[0] >= window:
                if now - state[0] < 2 * window:  # the next window: current becomes previous
                    state[0] += window
                    state[1], state[2] = state[2], 0
                else:  # idle for two windows or more: nothing left to count
                    state[0], state[1], state[2] = now, 0, 0
            left = window - (now - state[0])  # exact for a fresh window: 60, not 60.000000001
            if int(state[1] * left / window) + state[2] + cost > limit.amount:
                allowed = False
            usage = Usage(limit, int(state[1]), int(state[2]), left)
            states.append(state)
            usages.append(usage)
        if allowed:
            for state, usage in zip(states, usages, strict=True):
                state[2] += cost
                usage.current += cost
        return allowed, usages

    def _shrink(self, now: float) -> None:
        windows = self._windows
        for key in [k for k, state in windows.items() if now - state[0] >= 2 * k[1]]:
            del windows[key]
        if len(windows) >= self.max_keys:  # all busy: forget the oldest quarter
            for key in list(windows)[: max(1, self.max_keys // 4)]:
                del windows[key]


# The same counter as one Lua script (its text, and what KEYS, ARGV and the reply hold, are in
# sliding_window.lua beside this module), read once at import: its SHA1 is what EVALSHA names.
SCRIPT = resources.files("cache").joinpath("sliding_window.lua").read_bytes()
SCRIPT_SHA = hashlib.sha1(SCRIPT, usedforsecurity=False).hexdigest().encode()


class RedisWindows:
    """The counters on Redis, shared by every replica. `hit` raises `RespError` when Redis
    cannot answer; when to connect again is the owner's call (mcp_service.limiter: its breaker
    and `cache.breaker.Reconnect`)."""

    def __init__(
        self, address: RedisAddress, *, prefix: str, reply_timeout: float, connect_timeout: float
    ) -> None:
        self.address = address
        self.prefix = prefix.encode()
        self.reply_timeout = reply_timeout
        self.connect_timeout = connect_timeout
        self._line: RedisLine | None = None
        self._commands: dict[tuple[str, tuple[Limit, ...], int], bytes] = {}

    @property
    def ready(self) -> bool:
        return self._line is not None and not self._line.broken

    async def connect(self) -> None:
        """Open a connection and load the script, within `connect_timeout`; raises
        `RespUnavailable`."""
        line = await open_with_script(
            self.address, reply_timeout=self.reply_timeout, connect_timeout=self.connect_timeout
        )
        old, self._line = self._line, line
        if old is not None:
            old.close()

    def close(self) -> None:
        if self._line is not None:
            self._line.close()
            self._line = None

    async def hit(self, tag: str, limits: tuple[Limit, ...], cost: int = 1) -> Outcome:
        line = self._line
        if line is None or line.broken:
            raise RespUnavailable("not connected to Redis")
        command = self._commands.get((tag, limits, cost))
        if command is None:  # packed once per caller, limit set and cost
            if len(self._commands) >= MAX_COMMANDS:
                self._commands.clear()
            command = self._command(b"EVALSHA", SCRIPT_SHA, tag, limits, cost)
            self._commands[(tag, limits, cost)] = command
        try:
            reply = await line.call(command)
        except RespReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                line.close()  # READONLY after a failover, OOM...: reconnect before trusting it
                raise
            # Redis restarted and forgot the script: send its text (which loads it again).
            reply = await line.call(self._command(b"EVAL", SCRIPT, tag, limits, cost))
        return outcome_of(reply, limits)

    def _command(
        self, verb: bytes, script: bytes, tag: str, limits: tuple[Limit, ...], cost: int
    ) -> bytes:
        keys = window_keys(self.prefix + tag.encode(), limits)
        return pack(verb, script, len(keys), *keys, *script_args(limits, cost))


class SharedWindows(Protocol):
    """What the limiter needs of the counters on Redis: `RedisWindows` (one node) or
    `cache.cluster.ClusterWindows` (a cluster), chosen once when the service is built."""

    @property
    def ready(self) -> bool: ...

    async def connect(self) -> None: ...

    def close(self) -> None: ...

    async def hit(self, tag: str, limits: tuple[Limit, ...], cost: int = 1) -> Outcome: ...


async def open_with_script(
    address: RedisAddress, *, reply_timeout: float, connect_timeout: float
) -> RedisLine:
    """A connection to `address` with the script loaded, within `connect_timeout`; raises
    `RespUnavailable`."""
    try:
        async with asyncio.timeout(connect_timeout):
            line = await RedisLine.open(address, reply_timeout=reply_timeout)
    except TimeoutError:
        raise RespUnavailable("cannot connect to Redis: timed out") from None
    try:
        sha = await line.call(pack(b"SCRIPT", b"LOAD", SCRIPT))
    except RespReplyError as exc:
        line.close()
        raise RespUnavailable(f"cannot load the rate-limit script: {exc}") from None
    except BaseException:
        line.close()
        raise
    if sha != SCRIPT_SHA:
        line.close()
        raise RespUnavailable("Redis answered SCRIPT LOAD with an unexpected digest")
    return line


def window_keys(base: bytes, limits: tuple[Limit, ...]) -> list[bytes]:
    """The script's KEYS for one caller: `base` is the prefix and the caller's hash tag."""
    return [base + b":%d%s" % (limit.window, end) for limit in limits for end in (b"", b":p")]


def script_args(limits: tuple[Limit, ...], cost: int) -> list[int]:
    return [cost, *(n for limit in limits for n in (limit.amount, limit.window * 1000))]


def outcome_of(reply: list[int], limits: tuple[Limit, ...]) -> Outcome:
    """The script's reply as (admitted, usages)."""
    if len(limits) == 1:
        limit = limits[0]
        return reply[0] == 1, [Usage(limit, reply[1], reply[2], reply[3] / 1000 - limit.window)]
    usages = [
        Usage(limit, reply[3 * i + 1], reply[3 * i + 2], reply[3 * i + 3] / 1000 - limit.window)
        for i, limit in enumerate(limits)
    ]
    return reply[0] == 1, usages
