"""Keys and tokens for tests: real RSA signatures, Cognito's claim shapes, and hostile variants."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mcp_service.issuer import public_jwk

REGION = "eu-west-1"
POOL_ID = "eu-west-1_TestPool1"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL_ID}"
CLIENT_ID = "testclient123"
OTHER_CLIENT_ID = "someoneelse456"


@cache
def rsa_key(name: str = "primary") -> rsa.RSAPrivateKey:
    """One RSA key per name for the whole run (generation is the slow part)."""
    del name
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def kid_of(key: rsa.RSAPrivateKey) -> str:
    return public_jwk(key)["kid"]


def jwks_of(*keys: rsa.RSAPrivateKey) -> dict[str, Any]:
    return {"keys": [public_jwk(key) for key in keys]}


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")))


@dataclass
class TokenFactory:
    """Tokens as the test's Cognito pool would sign them, with any claim or header changed."""

    key: rsa.RSAPrivateKey = field(default_factory=rsa_key)
    issuer: str = ISSUER
    client_id: str = CLIENT_ID

    def claims(self, token_use: str = "access", **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": "4d1e2f3a-0000-4000-8000-00000000abcd",
            "iss": self.issuer,
            "token_use": token_use,
            "auth_time": now,
            "iat": now,
            "exp": now + 3600,
            "jti": str(uuid.uuid4()),
            "origin_jti": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
        }
        if token_use == "access":
            claims.update(
                client_id=self.client_id,
                username="alice",
                scope="openid profile mcp/tools",
                version=2,
            )
        else:
            claims.update(
                aud=self.client_id,
                **{"cognito:username": "alice", "cognito:groups": ["premium"]},
                email="alice@example.com",
            )
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not DROP}

    def token(
        self,
        token_use: str = "access",
        *,
        headers: dict[str, Any] | None = None,
        key: rsa.RSAPrivateKey | None = None,
        **changes: Any,
    ) -> str:
        header = {"alg": "RS256", "kid": kid_of(self.key), **(headers or {})}
        header = {name: value for name, value in header.items() if value is not DROP}
        return sign(header, self.claims(token_use, **changes), key or self.key)

    def unsigned(self, header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
        """A token assembled by hand: for algorithms and shapes PyJWT would refuse to produce."""
        return f"{b64json(header)}.{b64json(claims)}.{signature}"


DROP = object()


def sign(header: dict[str, Any], claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    """RS256 over exactly these JSON objects, whatever they hold (PyJWT would vet them first)."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"
