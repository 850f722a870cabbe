"""The facade's shared state: registered clients, pending authorizations, consent decisions,
codes and refresh token families, in Redis (any replica completes any step) or, without
Redis, in this process's memory (one replica).

Every value is sealed (`Box`: AES-GCM under a key derived from TOKEN_CACHE_SECRET, the Redis
key as associated data): whoever reads Redis learns nothing of a session, whoever writes it
cannot forge or move one. Keys live under `<REDIS_KEY_PREFIX>:v1:oauth:` and hash-tag what
one operation touches, so cluster mode keeps each script in one slot. A code is redeemed
once fleet-wide (redeem.lua) and a refresh token rotated once (rotate.lua), each atomically.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cache.redis import Client, SharedRedis

Record = dict[str, Any]
PRUNE_AT = 10_000
MAX_ENTRIES = 100_000
Redemption = Literal["redeemed", "replayed", "unknown"]
Rotation = Literal["rotated", "reused", "invalid", "unknown"]
REDEEM = resources.files("mcp_service.oauth").joinpath("redeem.lua").read_text()
ROTATE = resources.files("mcp_service.oauth").joinpath("rotate.lua").read_text()


def digest(secret: str) -> str:
    """How a code or refresh token is named in the store: never the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Box:
    """AES-256-GCM seals, one key per secret (HKDF): the first seals, all open."""

    def __init__(self, secrets: Iterable[str | bytes]) -> None:
        keys = [s.encode() if isinstance(s, str) else s for s in secrets]
        if not keys:
            raise ValueError("at least one secret is required")
        self._aeads = [AESGCM(_derive(key)) for key in keys]

    @classmethod
    def ephemeral(cls) -> Box:
        """A box of this process alone (no TOKEN_CACHE_SECRET, no Redis: one replica)."""
        return cls([os.urandom(32)])

    def seal(self, value: Record, context: str) -> str:
        nonce = os.urandom(12)
        data = json.dumps(value, separators=(",", ":")).encode()
        sealed = nonce + self._aeads[0].encrypt(nonce, data, context.encode())
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(self, sealed: str | bytes | None, context: str) -> Record | None:
        if sealed is None:
            return None
        if isinstance(sealed, bytes):
            sealed = sealed.decode("ascii", "replace")
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        except ValueError:
            return None
        for aead in self._aeads:
            try:
                value = json.loads(aead.decrypt(raw[:12], raw[12:], context.encode()))
            except (InvalidTag, ValueError):
                continue
            return value if isinstance(value, dict) else None
        return None


def _derive(secret: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mcp-service oauth state")
    return hkdf.derive(secret)


class LoginState(ABC):
    """The store's operations; `MemoryState` and `RedisState` implement them."""

    def __init__(self, box: Box) -> None:
        self.box = box

    @abstractmethod
    async def put(self, kind: str, name: str, record: Record, ttl: int) -> None:
        """Store `record` under (kind, name) for `ttl` seconds."""

    @abstractmethod
    async def get(self, kind: str, name: str) -> Record | None:
        """The record under (kind, name), if live and sealed by us."""

    @abstractmethod
    async def take(self, kind: str, name: str) -> Record | None:
        """Get and delete in one step: a pending authorization completes once."""

    @abstractmethod
    async def redeem(self, code: str, ttl: int) -> tuple[Redemption, Record | None]:
        """A code's record, once; a replay returns the record again as "replayed"."""

    @abstractmethod
    async def start_family(self, family: str, token: str, record: Record, ttl: int) -> None:
        """A new session whose valid refresh token is `token`, for `ttl` seconds."""

    @abstractmethod
    async def rotate(
        self, family: str, token: str, new_token: str
    ) -> tuple[Rotation, Record | None]:
        """Replace `token` by `new_token` atomically; a token rotated away ends the family."""

    @abstractmethod
    async def end_family(self, family: str) -> None:
        """Forget the session (revoked, or its code replayed)."""


class MemoryState(LoginState):
    """The store in this process: the same semantics, for one replica without Redis."""

    def __init__(self, box: Box, clock: Callable[[], float] = time.time) -> None:
        super().__init__(box)
        self._clock = clock
        self._values: dict[str, tuple[float, str]] = {}
        self._families: dict[str, tuple[float, dict[str, str]]] = {}

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None or entry[0] <= self._clock():
            self._values.pop(key, None)
            return None
        return entry[1]

    def _prune(self) -> None:
        """Expired entries go once the store passes PRUNE_AT, then the oldest past MAX_ENTRIES
        (insertion order), so no flood of registrations or sign-ins grows it without bound."""
        now = self._clock()
        for name in ("_values", "_families"):
            entries: dict[str, Any] = getattr(self, name)
            if len(entries) > PRUNE_AT:
                entries = {k: v for k, v in entries.items() if v[0] > now}
                for key in list(entries)[: max(0, len(entries) - MAX_ENTRIES)]:
                    del entries[key]
                setattr(self, name, entries)

    async def put(self, kind: str, name: str, record: Record, ttl: int) -> None:
        self._prune()
        key = f"{kind}:{name}"
        self._values[key] = (self._clock() + ttl, self.box.seal(record, key))

    async def get(self, kind: str, name: str) -> Record | None:
        key = f"{kind}:{name}"
        return self.box.open(self._live(key), key)

    async def take(self, kind: str, name: str) -> Record | None:
        key = f"{kind}:{name}"
        sealed = self._live(key)
        self._values.pop(key, None)
        return self.box.open(sealed, key)

    async def redeem(self, code: str, ttl: int) -> tuple[Redemption, Record | None]:
        key, used = f"code:{digest(code)}", f"used:{digest(code)}"
        sealed = self._live(key)
        if sealed is not None:
            del self._values[key]
            self._values[used] = (self._clock() + ttl, sealed)
            return "redeemed", self.box.open(sealed, key)
        sealed = self._live(used)
        if sealed is not None:
            return "replayed", self.box.open(sealed, key)
        return "unknown", None

    async def start_family(self, family: str, token: str, record: Record, ttl: int) -> None:
        self._prune()
        fields = {"current": digest(token), "data": self.box.seal(record, f"family:{family}")}
        self._families[family] = (self._clock() + ttl, fields)

    async def rotate(
        self, family: str, token: str, new_token: str
    ) -> tuple[Rotation, Record | None]:
        entry = self._families.get(family)
        if entry is None or entry[0] <= self._clock():
            self._families.pop(family, None)
            return "unknown", None
        fields, presented = entry[1], digest(token)
        if fields["current"] == presented:
            fields[f"u:{presented}"] = "1"
            fields["current"] = digest(new_token)
            return "rotated", self.box.open(fields["data"], f"family:{family}")
        if f"u:{presented}" in fields:
            del self._families[family]
            return "reused", None
        return "invalid", None

    async def end_family(self, family: str) -> None:
        self._families.pop(family, None)


class RedisState(LoginState):
    """The store in Redis, through the gate's `execute` (an unanswered call raises
    `SharedUnavailable`: the endpoint answers 503, nothing half-done)."""

    def __init__(self, shared: SharedRedis, box: Box) -> None:
        super().__init__(box)
        self._shared = shared

    def key(self, kind: str, name: str) -> str:
        return self._shared.key("oauth", f"{{{kind}:{name}}}")

    async def put(self, kind: str, name: str, record: Record, ttl: int) -> None:
        key = self.key(kind, name)
        sealed = self.box.seal(record, key)

        async def write(client: Client) -> None:
            await client.set(key, sealed, ex=ttl)

        await self._shared.execute(write)

    async def get(self, kind: str, name: str) -> Record | None:
        key = self.key(kind, name)

        async def read(client: Client) -> Any:
            return await client.get(key)

        return self.box.open(await self._shared.execute(read), key)

    async def take(self, kind: str, name: str) -> Record | None:
        key = self.key(kind, name)

        async def read(client: Client) -> Any:
            return await client.getdel(key)

        return self.box.open(await self._shared.execute(read), key)

    async def redeem(self, code: str, ttl: int) -> tuple[Redemption, Record | None]:
        name = digest(code)
        key = self.key("code", name)
        keys = [key, f"{key}:used"]

        async def run(client: Client) -> Any:
            return await client.eval(REDEEM, 2, *keys, ttl)

        reply = await self._shared.execute(run)
        if reply[0] == 0:
            return "unknown", None
        record = self.box.open(reply[1], key)
        return ("redeemed" if reply[0] == 1 else "replayed"), record

    async def start_family(self, family: str, token: str, record: Record, ttl: int) -> None:
        key = self.key("family", family)
        data = self.box.seal(record, key)

        async def write(client: Client) -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"current": digest(token), "data": data})
                pipe.expire(key, ttl)
                await pipe.execute()

        await self._shared.execute(write)

    async def rotate(
        self, family: str, token: str, new_token: str
    ) -> tuple[Rotation, Record | None]:
        key = self.key("family", family)
        args = (digest(token), digest(new_token))

        async def run(client: Client) -> Any:
            return await client.eval(ROTATE, 1, key, *args)

        reply = await self._shared.execute(run)
        outcome: tuple[Rotation, ...] = ("unknown", "rotated", "reused", "invalid")
        if reply[0] == 1:
            return "rotated", self.box.open(reply[1], key)
        return outcome[int(reply[0])], None

    async def end_family(self, family: str) -> None:
        key = self.key("family", family)

        async def delete(client: Client) -> None:
            await client.delete(key)

        await self._shared.execute(delete)
