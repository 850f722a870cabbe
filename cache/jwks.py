"""The signing keys of a user pool: fetched, validated, cached, and refreshed without stampedes.

`JwksCache` is the key source the verifier asks for a `kid`. It keeps the parsed keys in
process, shares one fetch between concurrent misses (single flight), refreshes for an unknown
`kid` at most once per cooldown window (aws-jwt-verify's penalty box: a flood of random kids
cannot hammer the IdP, while a key rotated in quiet times is picked up at once), keeps serving
the last good keys while a refresh fails, and backs off after a failed cold fetch so an outage
of the IdP is not met by one fetch per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from cache.errors import (
    InvalidJwksError,
    JwksError,
    JwksFetchError,
    JwksUnavailableError,
    UnknownKeyError,
)
from cache.jwks_store import SharedJwks
from observability.health import CheckResult

log = logging.getLogger(__name__)

MIN_RSA_BITS = 2048
MAX_KEYS = 100
MAX_DOCUMENT_BYTES = 1_048_576

JwksFetch = Callable[[], Awaitable[bytes]]


class KeySource(Protocol):
    """What the verifier needs: a public key for a `kid`, or a `JwksError` (cache.errors)."""

    async def get_key(self, kid: str) -> RSAPublicKey: ...


def parse_jwks(document: bytes | str | Mapping[str, Any]) -> dict[str, RSAPublicKey]:
    """The usable RS256 signing keys of a JWKS document, by `kid`.

    Keys of another type, use or algorithm, weak moduli and duplicates are skipped; a document
    left with no usable key is an `InvalidJwksError`, so it never replaces good keys.
    """
    if isinstance(document, bytes | str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise InvalidJwksError("JWKS is not JSON") from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise InvalidJwksError("JWKS has no 'keys' list")
    keys: dict[str, RSAPublicKey] = {}
    for entry in document["keys"][:MAX_KEYS]:
        parsed = _usable_key(entry)
        if parsed is not None and parsed[0] not in keys:
            keys[parsed[0]] = parsed[1]
    if not keys:
        raise InvalidJwksError("JWKS has no usable RS256 signing key")
    return keys


def _usable_key(entry: Any) -> tuple[str, RSAPublicKey] | None:
    if not isinstance(entry, Mapping):
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid or entry.get("kty") != "RSA":
        return None
    if entry.get("alg", "RS256") != "RS256" or entry.get("use", "sig") != "sig":
        return None
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    if any(field in entry for field in ("d", "p", "q")):
        return None  # a private key has no business in a JWKS; refuse rather than use it
    try:
        key = PyJWK(dict(entry), algorithm="RS256").key
    except (PyJWTError, ValueError, TypeError):
        return None
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        return None
    return kid, key


class HttpJwksFetch:
    """GET the JWKS over HTTPS within one deadline, no redirects and a size cap.

    `timeout` bounds the whole download -- connect, headers and every byte of the body -- not
    each read: an endpoint that trickles its answer a byte at a time is cut off at the deadline
    like one that never answers, so a request waiting for keys gets its 503 in about that time.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        client: httpx.AsyncClient | None = None,
        max_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self.url = url
        self._deadline = timeout
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 3.0))
        self._client = client
        self._max_bytes = max_bytes

    async def __call__(self) -> bytes:
        try:
            async with asyncio.timeout(self._deadline):
                return await self._download()
        except TimeoutError:
            raise JwksFetchError(
                f"JWKS endpoint did not answer in full within {self._deadline:g} s"
            ) from None

    async def _download(self) -> bytes:
        client = self._client or httpx.AsyncClient()
        try:
            async with client.stream(
                "GET",
                self.url,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise JwksFetchError(f"JWKS endpoint answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise JwksFetchError("JWKS document is too large")
                return bytes(body)
        except httpx.HTTPError as exc:
            raise JwksFetchError(f"JWKS endpoint unreachable: {type(exc).__name__}") from exc
        finally:
            if self._client is None:
                await client.aclose()


class JwksCache:
    """Key source: in-process keys, optionally backed by the fleet's shared JWKS (L2).

    In process: single flight, kid-miss cooldown, stale-while-revalidate, failure backoff.
    With `shared`: a replica adopts a document another replica fetched, only one replica at a
    time fetches from the IdP (the others wait briefly for its result), and the kid-miss
    cooldown holds for the whole fleet.
    """

    def __init__(
        self,
        fetch: JwksFetch,
        *,
        max_age: float = 3600.0,
        kid_miss_cooldown: float = 10.0,
        failure_backoff: float = 2.0,
        stale_max: float = 86_400.0,
        shared: SharedJwks | None = None,
        shared_wait: float = 2.0,
        clock: Callable[[], float] = time.time,
        on_fetch: Callable[[str, float], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._cooldown = kid_miss_cooldown
        self._backoff = failure_backoff
        self._stale_max = stale_max
        self._shared = shared if shared is not None and shared.enabled else None
        self._shared_wait = shared_wait
        self._clock = clock
        self._on_fetch = on_fetch
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at = -math.inf
        self._failed_until = -math.inf
        self._last_miss_refresh = -math.inf
        self._inflight: asyncio.Task[None] | None = None
        self.fetch_count = 0

    @property
    def loaded(self) -> bool:
        return bool(self._keys) and not self._expired()

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @property
    def age(self) -> float:
        return self._clock() - self._fetched_at

    async def get_key(self, kid: str) -> RSAPublicKey:
        key = self._keys.get(kid)
        if key is not None and not self._expired():
            if self.age > self._max_age:
                self._refresh_in_background()
            return key
        if not self._keys or self._expired():
            await self._cold_load()
        elif self._inflight is not None:
            await self._join(self._inflight, keep_stale=True)
        elif self._clock() - self._last_miss_refresh >= self._cooldown:
            self._last_miss_refresh = self._clock()
            await self._join(self._start_refresh(kid_miss=True), keep_stale=True)
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKeyError(kid)
        return key

    async def readiness(self) -> CheckResult:
        """Readiness: ready when signing keys are loaded or can be loaded now. It loads the way
        a request does (one download shared with whoever waits, none during the failure
        backoff), so probes cannot hammer a failing IdP."""
        if not self.loaded:
            try:
                await self._cold_load()
            except Exception as exc:
                return CheckResult.down(f"no signing keys: {exc}")
        return CheckResult.ok(f"{len(self.kids)} signing keys loaded")

    async def refresh(self) -> None:
        """Load now (sharing any load already under way); errors propagate."""
        await asyncio.shield(self._inflight or self._start_refresh())

    def _expired(self) -> bool:
        """Keys older than max_age + stale_max are not served any more, IdP down or not."""
        return self.age > self._max_age + self._stale_max

    async def _cold_load(self) -> None:
        now = self._clock()
        if now < self._failed_until and self._inflight is None:
            raise JwksUnavailableError("JWKS fetch failed recently", self._failed_until - now)
        await self._join(self._inflight or self._start_refresh(), keep_stale=False)

    async def _join(self, task: asyncio.Task[None], *, keep_stale: bool) -> None:
        try:
            await asyncio.shield(task)
        except JwksError as exc:
            if keep_stale and isinstance(exc, InvalidJwksError):
                return  # the published set is unusable: keep ours, the kid stays unknown
            raise JwksUnavailableError(str(exc), self._retry_after()) from exc

    def _retry_after(self) -> float:
        return max(1.0, self._failed_until - self._clock())

    def _start_refresh(self, *, kid_miss: bool = False) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._refresh(kid_miss))
        self._inflight = task
        task.add_done_callback(self._finished)
        return task

    def _refresh_in_background(self) -> None:
        if self._inflight is None and self._clock() >= self._failed_until:
            self._start_refresh()

    def _finished(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("JWKS refresh failed: %s", task.exception())

    async def _refresh(self, kid_miss: bool) -> None:
        shared = self._shared
        if shared is None:
            await self._fetch_from_idp()
            return
        if kid_miss:
            claim = await shared.claim_kid_miss(self._cooldown, self._fetched_at)
            if claim is not None:
                # Another replica claimed this window's refresh: take what it found, waiting
                # while its fetch may be under way (it takes the fetch lock only after its
                # claim, so an unlocked moment in between does not mean it is done).
                pending = claim.had if claim.age < self._shared_wait else None
                await self._adopt_shared(wait=True, newer_than=pending)
                return
        if not kid_miss and await self._adopt_shared(wait=False, fresh_only=True):
            return
        if not await shared.try_lock():
            if await self._adopt_shared(wait=True):
                return
        # The lock may have been free because the last holder had just stored its document
        # and released: read the shared copy again before fetching, or a fleet starting
        # together fetches twice.
        elif await self._adopt_shared(wait=False, fresh_only=not kid_miss):
            await shared.release()
            return
        try:
            await self._fetch_from_idp()
        except JwksError:
            if not await self._adopt_shared(wait=False):  # stale-if-error, fleet-wide
                raise
        finally:
            await shared.release()

    async def _adopt_shared(
        self, *, wait: bool, fresh_only: bool = False, newer_than: float | None = None
    ) -> bool:
        """Use the shared document if it is newer than ours (and usable); True if adopted.

        `newer_than`: another replica is fetching to replace keys fetched at that time, so
        with `wait`, a shared document not newer than that means its fetch has not landed.
        """
        assert self._shared is not None
        shared_doc = await self._shared.read()
        stale = shared_doc is None or shared_doc.fetched_at <= self._fetched_at
        if stale and wait:
            pending = newer_than is not None and (
                shared_doc is None or shared_doc.fetched_at <= newer_than
            )
            if pending or await self._shared.locked():  # another replica is fetching: wait
                shared_doc = await self._shared.wait_for_newer(self._fetched_at, self._shared_wait)
            else:  # it may have stored and unlocked between our read and this check
                shared_doc = await self._shared.read()
        if shared_doc is None or shared_doc.fetched_at <= self._fetched_at:
            return False
        age = self._clock() - shared_doc.fetched_at
        if age > self._max_age + self._stale_max or (fresh_only and age > self._max_age):
            return False
        try:
            keys = parse_jwks(shared_doc.document)
        except InvalidJwksError:
            return False
        self._store(keys, shared_doc.fetched_at)
        return True

    async def _fetch_from_idp(self) -> None:
        started = time.perf_counter()
        self.fetch_count += 1
        try:
            document = await self._fetch()
            keys = parse_jwks(document)
        except JwksError as exc:
            self._failed_until = self._clock() + self._backoff
            self._report("invalid" if isinstance(exc, InvalidJwksError) else "error", started)
            raise
        fetched_at = self._clock()
        self._store(keys, fetched_at)
        self._report("ok", started)
        if self._shared is not None:
            await self._shared.store(document, fetched_at, self._max_age + self._stale_max)

    def _store(self, keys: dict[str, RSAPublicKey], fetched_at: float) -> None:
        self._keys = keys
        self._fetched_at = fetched_at
        self._failed_until = -math.inf

    def _report(self, result: str, started: float) -> None:
        if self._on_fetch is not None:
            self._on_fetch(result, time.perf_counter() - started)
