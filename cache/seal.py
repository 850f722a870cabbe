"""HMAC seals for what the fleet shares through Redis.

Whoever can write to Redis must not be able to mint an identity or plant a signing key. Every
shared value is stored as `v1.<mac>.<payload>`, where the MAC covers the payload and the
context it belongs to (the Redis key it is stored under), so a valid entry copied to another
key does not verify either. The first secret seals; every listed secret is accepted, so the
secret rotates without a flush: add the new one first, deploy, then drop the old one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

_VERSION = b"v1"
MIN_SECRET_LENGTH = 32


class Sealer:
    def __init__(self, secrets: Iterable[str | bytes]) -> None:
        keys = [s.encode() if isinstance(s, str) else bytes(s) for s in secrets]
        if not keys:
            raise ValueError("at least one secret is required")
        if any(len(key) < MIN_SECRET_LENGTH for key in keys):
            raise ValueError(f"each secret needs {MIN_SECRET_LENGTH} bytes or more")
        self._keys = keys

    def seal(self, payload: bytes, context: bytes) -> bytes:
        return b".".join((_VERSION, self._mac(self._keys[0], payload, context), payload))

    def unseal(self, sealed: bytes | str, context: bytes) -> bytes | None:
        """The payload if some accepted secret sealed it for this context; otherwise None."""
        if isinstance(sealed, str):
            sealed = sealed.encode()
        version, _, rest = sealed.partition(b".")
        mac, sep, payload = rest.partition(b".")
        if version != _VERSION or not sep:
            return None
        for key in self._keys:
            if hmac.compare_digest(mac, self._mac(key, payload, context)):
                return payload
        return None

    @staticmethod
    def _mac(key: bytes, payload: bytes, context: bytes) -> bytes:
        digest = hmac.new(key, len(context).to_bytes(4, "big") + context + payload, hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=")
