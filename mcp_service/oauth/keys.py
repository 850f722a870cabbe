"""The facade's signing keys (OAUTH_PROXY_SIGNING_KEYS): the first signs, all are published."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mcp_service.issuer import public_jwk

_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", re.S)


def parse_signing_keys(text: str) -> list[rsa.RSAPrivateKey]:
    """The PEM RSA private keys in `text` (commas or newlines between them), in order. The
    message of a ValueError never quotes the text: it is a secret."""
    blocks = _PEM.findall(text)
    leftover = _PEM.sub("", text).replace(",", "").strip()
    if not blocks or leftover:
        raise ValueError("must be PEM RSA private keys separated by commas or newlines")
    keys = []
    for index, block in enumerate(blocks, 1):
        try:
            key = serialization.load_pem_private_key(block.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError(f"key {index} is not an unencrypted PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise ValueError(f"key {index} is not an RSA key of 2048 bits or more")
        keys.append(key)
    return keys


@dataclass(frozen=True)
class SigningKeys:
    """The key that signs, and every key's public half by `kid`."""

    signing: rsa.RSAPrivateKey
    kid: str
    public: Mapping[str, rsa.RSAPublicKey]
    jwks_document: bytes

    @classmethod
    def of(cls, keys: list[rsa.RSAPrivateKey]) -> SigningKeys:
        jwks = [public_jwk(key) for key in keys]
        public = {jwk["kid"]: key.public_key() for jwk, key in zip(jwks, keys, strict=True)}
        document = json.dumps({"keys": jwks}).encode()
        return cls(keys[0], jwks[0]["kid"], public, document)

    def sign(self, claims: Mapping[str, Any]) -> str:
        import jwt

        return jwt.encode(dict(claims), self.signing, algorithm="RS256", headers={"kid": self.kid})
