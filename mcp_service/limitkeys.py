"""Who a request is counted as: the key of a caller (per-subject limit) or of a client address
(per-IP limit).

A caller is its verified token's `sub`, else its `client_id`, written as a Redis Cluster hash
tag so that all of one caller's counters live in one slot. A client address is the address
uvicorn's proxy-headers middleware settled on (TRUSTED_PROXIES); IPv6 clients are keyed by
their /64, the block one subscriber is usually given, so rotating addresses inside it does not
escape the limit.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

_SAFE_ID = re.compile(r"[A-Za-z0-9._@+=:-]{1,128}")


def subject_tag(claims: Mapping[str, Any]) -> str:
    """The caller's counter key: `sub`, else `client_id`, as a Redis Cluster hash tag. Odd
    characters (a `}` would break the tag) are hashed; a token with neither is `{anonymous}`."""
    sub = claims.get("sub")
    if isinstance(sub, str) and sub:
        return _tag("s", sub)
    client_id = claims.get("client_id")
    if isinstance(client_id, str) and client_id:
        return _tag("c", client_id)
    return "{anonymous}"


@functools.lru_cache(maxsize=65_536)
def _tag(kind: str, value: str) -> str:
    if not _SAFE_ID.fullmatch(value):
        value = "h" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{{{kind}:{value}}}"


@functools.lru_cache(maxsize=4096)
def address_key(address: str) -> str:
    """The key one client's requests are counted under: the address, or an IPv6 /64."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address
