"""Token -> Identity: the in-process cache (L1), then the fleet's (L2), then full verification.

Every answer, cached or not, is checked against the revocations in memory and the required
scopes. Two entry points with one match rule (the presented token's bytes equal the cached
identity's): `authenticate(token)`, the general one, and `cached(authorization)`, its hot twin
for the request path, which looks the token up where it lies in the Authorization header's
bytes without copying or decoding it (see `L1_KEY_BYTES` and docs/performance.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from cache.revocations import Revocation, RevocationSet
from cache.tokens import LocalTokenCache, SharedTokenStore, token_key
from mcp_service.errors import InsufficientScope, InvalidToken, Reason, Rejection
from mcp_service.identity import Identity, token_bytes
from mcp_service.verifier import CognitoVerifier

log = logging.getLogger("mcp_service.auth")

CacheHook = Callable[[str], None]  # "l1", "l2" or "miss"

# The in-process cache's key: the token's last 64 bytes, all of them signature (a Cognito
# RS256 signature is 342 characters). Hashing a 1 KB token for a dict lookup costs ~3 k
# instructions a request (docs/performance.md), its signature's tail a tenth of that. The key
# only finds a candidate: an entry counts only if its whole token equals the one presented, so
# two tokens that share a tail merely take each other's place, and a forged token carrying a
# cached token's tail finds an entry it does not match, is verified, and is refused.
L1_KEY_BYTES = 64
BEARER_PREFIX = b"Bearer "


def local_key(raw: bytes) -> bytes:
    """The in-process cache key of a token's bytes (see L1_KEY_BYTES)."""
    return raw[-L1_KEY_BYTES:]


class Authenticator:
    def __init__(
        self,
        verifier: CognitoVerifier,
        cache: LocalTokenCache[Identity],
        *,
        required_scopes: Iterable[str] = (),
        shared: SharedTokenStore | None = None,
        revoked: RevocationSet | None = None,
        on_cache: CacheHook | None = None,
    ) -> None:
        self.verifier = verifier
        self.cache = cache
        self.required_scopes = tuple(required_scopes)
        self._required = frozenset(self.required_scopes)
        self.shared = shared if shared is not None and shared.enabled else None
        self.revoked = revoked if revoked is not None else RevocationSet()
        self.on_cache = on_cache

    def cached(self, authorization: bytes) -> Identity | None:
        """The hot twin of `authenticate`, without a coroutine: the identity of a token verified
        earlier, checked; None when not cached. `authorization` is an Authorization header
        value that starts with BEARER_PREFIX; the token is compared where it lies in it."""
        identity = self.cache.get(authorization[-L1_KEY_BYTES:])  # local_key(), in place
        if identity is None:
            return None
        raw = identity.raw
        if len(authorization) != len(BEARER_PREFIX) + len(raw) or not authorization.endswith(raw):
            return None
        if self.on_cache is not None:
            self.on_cache("l1")
        return self._checked(identity)

    async def authenticate(self, token: str) -> Identity:
        """The identity of `token`, verifying it unless it was verified earlier; raises a
        `Rejection`."""
        raw = token_bytes(token)
        key = local_key(raw)
        identity = self.cache.get(key)
        if identity is None or identity.raw != raw:  # see L1_KEY_BYTES
            identity = await self._resolve(token, token_key(token))
            self.cache.put(key, identity, identity.expires_at)
        elif self.on_cache is not None:
            self.on_cache("l1")
        return self._checked(identity)

    def _checked(self, identity: Identity) -> Identity:
        revoked = self.revoked
        if revoked.active and revoked.is_revoked(
            jti=identity.jti,
            origin_jti=identity.origin_jti,
            sub=identity.subject,
            iat=identity.issued_at,
        ):
            raise InvalidToken(Reason.REVOKED)
        if not self._required <= identity.scopes:
            raise InsufficientScope(self.required_scopes)
        return identity

    def forget(self, revocation: Revocation) -> int:
        """Drop cached identities a new revocation covers."""
        return self.cache.discard_where(lambda identity: identity.revoked_by(revocation))

    async def _resolve(self, token: str, key: bytes) -> Identity:
        if self.shared is not None:
            claims = await self.shared.get(key)
            if claims is not None:
                try:
                    self.verifier.check_claims(claims)
                    if self.on_cache is not None:
                        self.on_cache("l2")
                    return Identity.from_claims(token, claims)
                except Rejection:
                    pass  # e.g. expired, or the rules changed since: verify afresh
        if self.on_cache is not None:
            self.on_cache("miss")
        identity = await self._verify(token)
        if self.shared is not None:
            await self.shared.put(key, identity.claims, identity.expires_at)
        return identity

    async def _verify(self, token: str) -> Identity:
        try:
            claims = await self.verifier.verify(token)
            return Identity.from_claims(token, claims)
        except Rejection:
            raise
        except Exception:
            # A bug or an input nobody foresaw: refuse, and leave a trace without the token.
            log.exception("token verification failed unexpectedly")
            raise InvalidToken(Reason.MALFORMED, "unverifiable") from None
