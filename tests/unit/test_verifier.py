"""The Cognito verification rules, one behaviour per test, through CognitoVerifier.verify()."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from cache.jwks import JwksCache
from mcp_service.errors import InvalidToken, KeysUnavailable, Reason
from mcp_service.verifier import CognitoVerifier, VerifierConfig
from tests.support.tokens import (
    CLIENT_ID,
    DROP,
    ISSUER,
    OTHER_CLIENT_ID,
    TokenFactory,
    b64,
    b64json,
    jwks_of,
    kid_of,
    public_pem,
    rsa_key,
)

NOW = 1_800_000_000.0


def verifier(
    token_use: str = "access",
    *,
    leeway: float = 5.0,
    max_token_bytes: int = 16_384,
    clock_value: float | None = None,
) -> CognitoVerifier:
    document = json.dumps(jwks_of(rsa_key())).encode()

    async def fetch() -> bytes:
        return document

    config = VerifierConfig(
        issuer=ISSUER,
        client_ids=frozenset({CLIENT_ID}),
        token_use=token_use,  # type: ignore[arg-type]
        leeway=leeway,
        max_token_bytes=max_token_bytes,
    )
    return CognitoVerifier(config, JwksCache(fetch), clock=lambda: clock_value or time.time())


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()


async def rejected(v: CognitoVerifier, token: str) -> Reason:
    with pytest.raises(InvalidToken) as caught:
        await v.verify(token)
    return caught.value.reason


async def test_a_valid_access_token_returns_its_claims(tokens: TokenFactory) -> None:
    claims = await verifier().verify(tokens.token(username="bob"))
    assert claims["username"] == "bob"
    assert claims["client_id"] == CLIENT_ID
    assert claims["token_use"] == "access"


async def test_an_id_token_is_refused_by_default(tokens: TokenFactory) -> None:
    assert await rejected(verifier(), tokens.token("id")) is Reason.WRONG_TOKEN_USE


async def test_an_id_token_is_accepted_when_token_use_is_id(tokens: TokenFactory) -> None:
    claims = await verifier("id").verify(tokens.token("id"))
    assert claims["aud"] == CLIENT_ID


async def test_an_access_token_is_refused_when_token_use_is_id(tokens: TokenFactory) -> None:
    assert await rejected(verifier("id"), tokens.token("access")) is Reason.WRONG_TOKEN_USE


@pytest.mark.parametrize("token_use", ["access", "id"])
async def test_both_kinds_are_accepted_when_token_use_is_any(
    tokens: TokenFactory, token_use: str
) -> None:
    claims = await verifier("any").verify(tokens.token(token_use))
    assert claims["token_use"] == token_use


@pytest.mark.parametrize("token_use", [DROP, "refresh", "", None, ["access"]])
async def test_a_token_without_an_accepted_token_use_is_refused(
    tokens: TokenFactory, token_use: Any
) -> None:
    reason = await rejected(verifier("any"), tokens.token(token_use=token_use))
    assert reason is Reason.WRONG_TOKEN_USE


async def test_an_expired_token_is_refused(tokens: TokenFactory) -> None:
    token = tokens.token(iat=NOW - 7200, exp=NOW - 60)
    assert await rejected(verifier(clock_value=NOW), token) is Reason.EXPIRED


async def test_a_token_expired_within_the_leeway_is_accepted(tokens: TokenFactory) -> None:
    token = tokens.token(iat=NOW - 3600, exp=NOW - 3)
    assert (await verifier(clock_value=NOW, leeway=5).verify(token))["exp"] == NOW - 3


async def test_a_token_without_exp_is_refused(tokens: TokenFactory) -> None:
    assert await rejected(verifier(), tokens.token(exp=DROP)) is Reason.MISSING_CLAIM


@pytest.mark.parametrize("exp", ["tomorrow", True, [1], {"t": 1}, 10**400])
async def test_a_non_numeric_exp_is_refused(tokens: TokenFactory, exp: Any) -> None:
    assert await rejected(verifier(), tokens.token(exp=exp)) is Reason.MALFORMED


async def test_a_token_with_nbf_in_the_future_is_refused(tokens: TokenFactory) -> None:
    token = tokens.token(iat=NOW, nbf=NOW + 120, exp=NOW + 3600)
    assert await rejected(verifier(clock_value=NOW), token) is Reason.NOT_YET_VALID


async def test_a_token_issued_in_the_future_is_refused(tokens: TokenFactory) -> None:
    token = tokens.token(iat=NOW + 120, exp=NOW + 3600)
    assert await rejected(verifier(clock_value=NOW), token) is Reason.NOT_YET_VALID


async def test_nbf_within_the_leeway_is_accepted(tokens: TokenFactory) -> None:
    token = tokens.token(iat=NOW, nbf=NOW + 3, exp=NOW + 3600)
    assert (await verifier(clock_value=NOW, leeway=5).verify(token))["nbf"] == NOW + 3


@pytest.mark.parametrize(
    "issuer",
    [
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_OtherPool",
        "https://cognito-idp.us-east-1.amazonaws.com/eu-west-1_TestPool1",
        ISSUER + "/",
        ISSUER.replace("https", "http"),
        ISSUER.upper(),
        "",
        DROP,
        [ISSUER],
    ],
)
async def test_a_token_from_another_issuer_is_refused(tokens: TokenFactory, issuer: Any) -> None:
    assert await rejected(verifier(), tokens.token(iss=issuer)) is Reason.WRONG_ISSUER


@pytest.mark.parametrize("client_id", [OTHER_CLIENT_ID, "", DROP, [CLIENT_ID], CLIENT_ID.upper()])
async def test_an_access_token_for_another_client_is_refused(
    tokens: TokenFactory, client_id: Any
) -> None:
    assert await rejected(verifier(), tokens.token(client_id=client_id)) is Reason.WRONG_CLIENT


@pytest.mark.parametrize("aud", [OTHER_CLIENT_ID, "", DROP, [OTHER_CLIENT_ID], 7])
async def test_an_id_token_for_another_audience_is_refused(tokens: TokenFactory, aud: Any) -> None:
    assert await rejected(verifier("id"), tokens.token("id", aud=aud)) is Reason.WRONG_AUDIENCE


async def test_an_id_token_with_the_client_among_several_audiences_is_accepted(
    tokens: TokenFactory,
) -> None:
    claims = await verifier("id").verify(tokens.token("id", aud=[OTHER_CLIENT_ID, CLIENT_ID]))
    assert CLIENT_ID in claims["aud"]


@pytest.mark.parametrize("kid", [DROP, "", None])
async def test_a_token_without_kid_is_refused(tokens: TokenFactory, kid: Any) -> None:
    token = tokens.token(headers={"kid": kid})
    assert await rejected(verifier(), token) is Reason.MISSING_KID


@pytest.mark.parametrize("kid", [7, ["a"], {"k": 1}, "k" * 1000])
async def test_a_kid_that_is_not_a_short_string_is_refused(tokens: TokenFactory, kid: Any) -> None:
    assert await rejected(verifier(), tokens.token(headers={"kid": kid})) is Reason.MALFORMED


async def test_a_token_with_an_unknown_kid_is_refused(tokens: TokenFactory) -> None:
    token = tokens.token(headers={"kid": "not-a-published-kid"})
    assert await rejected(verifier(), token) is Reason.UNKNOWN_KID


async def test_a_token_signed_by_an_unpublished_key_under_a_published_kid_is_refused(
    tokens: TokenFactory,
) -> None:
    token = tokens.token(key=rsa_key("attacker"))
    assert await rejected(verifier(), token) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_an_unsigned_token_is_refused(tokens: TokenFactory, alg: str) -> None:
    header = {"alg": alg, "kid": kid_of(rsa_key()), "typ": "JWT"}
    for signature in ("", b64("x")):
        token = tokens.unsigned(header, tokens.claims(), signature)
        assert await rejected(verifier(), token) in {Reason.UNSUPPORTED_ALG, Reason.MALFORMED}


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    tokens: TokenFactory, alg: str
) -> None:
    """The classic confusion attack: HMAC keyed with the RSA public key's bytes."""
    import hashlib
    import hmac

    header = {"alg": alg, "kid": kid_of(rsa_key()), "typ": "JWT"}
    signing_input = f"{b64json(header)}.{b64json(tokens.claims())}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    for secret in (public_pem(rsa_key()), public_pem(rsa_key()).strip()):
        signature = b64(hmac.new(secret, signing_input.encode(), digest).digest())
        token = f"{signing_input}.{signature}"
        assert await rejected(verifier(), token) is Reason.UNSUPPORTED_ALG


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES256", "EdDSA", "rs256", ""])
async def test_a_token_with_an_algorithm_off_the_allow_list_is_refused(
    tokens: TokenFactory, alg: str
) -> None:
    token = tokens.token(headers={"alg": alg})
    assert await rejected(verifier(), token) is Reason.UNSUPPORTED_ALG


def tamper(token: str, index: int, change: Any) -> str:
    parts = token.split(".")
    parts[index] = change(parts[index])
    return ".".join(parts)


def _edit_payload(segment: str) -> str:
    claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    claims["username"] = "admin"
    return b64json(claims)


async def test_a_tampered_payload_is_refused(tokens: TokenFactory) -> None:
    token = tamper(tokens.token(), 1, _edit_payload)
    assert await rejected(verifier(), token) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "change",
    [
        lambda sig: sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB"),
        lambda sig: sig[::-1],
        lambda sig: sig[: len(sig) // 2],
        lambda sig: b64(b"\x00" * 256),
    ],
    ids=["flipped-tail", "reversed", "truncated", "zeroes"],
)
async def test_a_tampered_signature_is_refused(tokens: TokenFactory, change: Any) -> None:
    token = tamper(tokens.token(), 2, change)
    assert await rejected(verifier(), token) in {Reason.BAD_SIGNATURE, Reason.MALFORMED}


async def test_a_token_without_a_signature_segment_is_refused(tokens: TokenFactory) -> None:
    token = tokens.token().rsplit(".", 1)[0] + "."
    assert await rejected(verifier(), token) is Reason.MALFORMED


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
        {"x5c": ["MIIB"]},
    ],
    ids=["jku", "x5u", "jwk", "x5c"],
)
async def test_a_token_naming_its_own_key_is_refused(
    tokens: TokenFactory, header: dict[str, Any]
) -> None:
    assert await rejected(verifier(), tokens.token(headers=header)) is Reason.FORBIDDEN_HEADER


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["urn:example:unknown"], [], "exp"])
async def test_a_token_with_crit_is_refused(tokens: TokenFactory, crit: Any) -> None:
    token = tokens.token(headers={"crit": crit, "urn:example:unknown": True, "b64": True})
    assert await rejected(verifier(), token) is Reason.FORBIDDEN_HEADER


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "...",
        "eyJ.eyJ.sig",
        "!!!.???.***",
        "a b.c d.e f",
        "€€€.€€€.€€€",
        f"{b64('not json')}.{b64json({})}.{b64('s')}",
        f"{b64json([1, 2])}.{b64json({})}.{b64('s')}",
        f"{b64json('str')}.{b64json({})}.{b64('s')}",
        f"{b64('{' * 10000)}.{b64json({})}.{b64('s')}",
        b64(bytes([255, 254])) + f".{b64json({})}.{b64('s')}",
        f"{b64json({'alg': 'RS256', 'kid': 'k'})}=.{b64json({})}.{b64('s')}",
        "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    ],
    ids=lambda t: repr(t)[:40],
)
async def test_a_token_that_is_not_a_jwt_is_refused_as_malformed(token: str) -> None:
    assert await rejected(verifier(), token) is Reason.MALFORMED


@pytest.mark.parametrize("payload", ["not json", "[1,2]", '"str"', "{" * 5000, "\xff"])
async def test_a_signed_payload_that_is_not_a_json_object_is_refused(payload: str) -> None:
    header = {"alg": "RS256", "kid": kid_of(rsa_key())}
    signing_input = f"{b64json(header)}.{b64(payload.encode('latin-1'))}"
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signature = rsa_key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{b64(signature)}"
    assert await rejected(verifier(), token) is Reason.MALFORMED


async def test_an_oversized_token_is_refused_before_parsing(tokens: TokenFactory) -> None:
    token = tokens.token(padding="x" * 20_000)
    assert await rejected(verifier(max_token_bytes=16_384), token) is Reason.OVERSIZED


async def test_a_huge_token_is_refused_as_oversized() -> None:
    assert await rejected(verifier(), "a" * 5_000_000) is Reason.OVERSIZED


async def test_a_non_string_sub_is_refused(tokens: TokenFactory) -> None:
    assert await rejected(verifier(), tokens.token(sub=12345)) is Reason.MALFORMED


async def test_no_reachable_jwks_is_keys_unavailable_not_invalid(tokens: TokenFactory) -> None:
    from cache.errors import JwksFetchError

    async def fetch() -> bytes:
        raise JwksFetchError("down")

    config = VerifierConfig(issuer=ISSUER, client_ids=frozenset({CLIENT_ID}))
    v = CognitoVerifier(config, JwksCache(fetch))
    with pytest.raises(KeysUnavailable) as caught:
        await v.verify(tokens.token())
    assert caught.value.status == 503
    assert caught.value.retry_after >= 1


def test_a_verifier_needs_a_cognito_issuer_and_a_client() -> None:
    with pytest.raises(ValueError, match="issuer"):
        VerifierConfig(issuer="https://example.com", client_ids=frozenset({CLIENT_ID}))
    with pytest.raises(ValueError, match="client"):
        VerifierConfig(issuer=ISSUER, client_ids=frozenset())
