"""`mcp-service revoke`: write a revocation to Redis and announce it to every replica."""

from __future__ import annotations

import getpass
import json
import logging
import socket
from datetime import UTC, datetime

from cache.errors import RevocationError
from cache.revocations import Kind, Revocation, RevocationStore
from mcp_service.errors import RevokeError
from mcp_service.settings import Settings
from mcp_service.shared import shared_redis

log = logging.getLogger("mcp_service.revocations")


def _store(settings: Settings) -> RevocationStore:
    return RevocationStore(shared_redis(settings), ttl=settings.revocation_ttl_seconds)


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return socket.gethostname()


def describe(revocation: Revocation) -> str:
    def iso(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")

    return json.dumps(
        {
            "kind": revocation.kind,
            "value": revocation.value,
            "revoked_at": iso(revocation.revoked_at),
            "expires_at": iso(revocation.expires_at),
            "reason": revocation.reason,
            "by": revocation.by,
        }
    )


async def revoke(settings: Settings, kind: Kind, value: str, reason: str) -> str:
    store = _store(settings)
    try:
        revocation = await store.revoke(kind, value, reason=reason, by=_who())
    except RevocationError as exc:
        raise RevokeError(str(exc)) from None
    finally:
        await store.close()
    log.warning(
        "token revoked",
        extra={"kind": kind, "value": value, "reason": reason, "by": revocation.by},
    )
    return describe(revocation)


async def list_revocations(settings: Settings) -> list[str]:
    store = _store(settings)
    try:
        return [describe(revocation) for revocation in await store.load()]
    except RevocationError as exc:
        raise RevokeError(str(exc)) from None
    finally:
        await store.close()
