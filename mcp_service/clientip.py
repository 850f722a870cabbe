"""Which client a request comes from, for the per-IP limit.

The peer address, unless the peer is one of the configured trusted proxies: then the
X-Forwarded-For chain is read from the right (each proxy appends the address it saw) and the
first address that is not a trusted proxy is the client. Everything left of it was written by
the client and is ignored, so a forged header cannot choose another client's budget. An entry
that is not an IP address ends the walk at the last trusted hop. IPv6 clients are keyed by
their /64, the block one subscriber is usually given, so rotating addresses inside it does
not escape the limit.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import Scope

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_HOPS = 20  # a longer chain is read only this far from the right


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
    `[2001:db8::1]:5678`; None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    """The proxies allowed to say who the client is (TRUSTED_PROXIES)."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks)
        self._trusted = functools.lru_cache(maxsize=1024)(self._contains)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        return bool(self.networks) and self._trusted(address)

    def _contains(self, address: str) -> bool:
        ip = parse_address(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[bytes]) -> str:
        """The client address given the peer and the X-Forwarded-For header lines, in order."""
        if not self.trusts(peer):
            return peer
        hops = [hop for line in forwarded_for for hop in line.decode("latin-1").split(",")]
        client = peer
        for hop in reversed(hops[-MAX_HOPS:]):
            ip = parse_address(hop)
            if ip is None:
                break
            client = str(ip)
            if not self.trusts(client):
                break
        return client


def client_address(scope: Scope, proxies: TrustedProxies) -> str:
    peer = scope.get("client")
    address = str(peer[0]) if peer else ""
    if proxies and proxies.trusts(address):
        forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
        address = proxies.client(address, forwarded)
    return address


@functools.lru_cache(maxsize=4096)
def limit_key(address: str) -> str:
    """The key one client's requests are counted under: the address, or an IPv6 /64."""
    if ":" not in address:
        return address
    ip = parse_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address
