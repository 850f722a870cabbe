"""redact(): the last line of defence when a token ends up in a log message or field."""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from observability.logs import redact


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


jwts = st.builds(
    lambda claims, sig: ".".join(
        [
            b64(json.dumps({"alg": "RS256", "kid": "k"}).encode()),
            b64(json.dumps(claims).encode()),
            b64(sig),
        ]
    ),
    st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20), min_size=1, max_size=4),
    st.binary(min_size=32, max_size=256),
)
surroundings = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)


@given(jwts, surroundings, surroundings)
def test_a_jwt_anywhere_in_a_text_is_removed(token: str, before: str, after: str) -> None:
    cleaned = redact(f"{before} {token} {after}")
    header, payload, _ = token.split(".")
    assert token not in cleaned
    assert f"{header}.{payload}" not in cleaned


@given(jwts, st.integers(min_value=0, max_value=200))
def test_a_jwt_cut_short_after_its_payload_starts_is_removed(token: str, cut: int) -> None:
    header, payload, _ = token.split(".")
    partial = token[: len(header) + 1 + 4 + cut]
    assert f"{header}.{payload[:4]}" not in redact(f"path=/{partial}")


@given(st.text(alphabet=st.characters(whitelist_categories=["L", "N"]), min_size=1, max_size=60))
def test_a_bearer_credential_of_any_shape_is_removed(credential: str) -> None:
    cleaned = redact(f"Authorization: Bearer {credential}")
    assert cleaned == "Authorization: Bearer [redacted]"


def test_ordinary_text_is_left_alone() -> None:
    text = "JWKS refresh failed: JWKS endpoint answered 503 (kid abc.def)"
    assert redact(text) == text
