"""The verifier's second issuer, the login facade's own: the same rules, its own `iss` and
`aud`, and each token held to the issuer whose key signed it."""

from __future__ import annotations

import json

import pytest

from cache.jwks import JwksCache
from mcp_service.errors import InvalidToken, Reason
from mcp_service.verifier import CognitoVerifier, OwnIssuer, VerifierConfig
from tests.support.tokens import CLIENT_ID, DROP, ISSUER, TokenFactory, jwks_of, kid_of, rsa_key

OWN = "https://mcp.example.com"
RESOURCE = f"{OWN}/mcp"


def verifier() -> CognitoVerifier:
    document = json.dumps(jwks_of(rsa_key())).encode()

    async def fetch() -> bytes:
        return document

    own_key = rsa_key("facade")
    own = OwnIssuer(
        VerifierConfig(issuer=OWN, client_ids=frozenset(), audience=RESOURCE),
        {kid_of(own_key): own_key.public_key()},
    )
    config = VerifierConfig(issuer=ISSUER, client_ids=frozenset({CLIENT_ID}))
    return CognitoVerifier(config, JwksCache(fetch), own=own)


def own_token(**changes: object) -> str:
    factory = TokenFactory(key=rsa_key("facade"), issuer=OWN, client_id="a-registered-client")
    return factory.token(**{"aud": RESOURCE, **changes})


async def test_a_token_of_the_own_issuer_for_this_resource_is_accepted() -> None:
    claims = await verifier().verify(own_token())
    assert claims["iss"] == OWN
    assert claims["client_id"] == "a-registered-client"  # any client the facade registered


@pytest.mark.parametrize(
    "aud", ["https://other.example.com/mcp", f"{OWN}/other", ["https://x.example/mcp"], DROP]
)
async def test_a_token_of_the_own_issuer_for_another_audience_is_refused(aud: object) -> None:
    with pytest.raises(InvalidToken) as caught:
        await verifier().verify(own_token(aud=aud))
    assert caught.value.reason is Reason.WRONG_AUDIENCE


async def test_a_token_signed_by_the_own_key_naming_cognito_is_refused() -> None:
    with pytest.raises(InvalidToken) as caught:
        await verifier().verify(own_token(iss=ISSUER, client_id=CLIENT_ID))
    assert caught.value.reason is Reason.WRONG_ISSUER


async def test_a_token_signed_by_cognito_naming_the_own_issuer_is_refused() -> None:
    with pytest.raises(InvalidToken) as caught:
        await verifier().verify(TokenFactory().token(iss=OWN, aud=RESOURCE))
    assert caught.value.reason is Reason.WRONG_ISSUER


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": 1}, Reason.EXPIRED),
        ({"token_use": "id"}, Reason.WRONG_TOKEN_USE),
        ({"exp": DROP}, Reason.MISSING_CLAIM),
        ({"sub": 5}, Reason.MALFORMED),
    ],
)
async def test_the_own_issuer_is_held_to_the_same_rules(
    changes: dict[str, object], reason: Reason
) -> None:
    with pytest.raises(InvalidToken) as caught:
        await verifier().verify(own_token(**changes))
    assert caught.value.reason is reason


async def test_cognito_tokens_still_pass_beside_the_own_issuer() -> None:
    claims = await verifier().verify(TokenFactory().token())
    assert claims["iss"] == ISSUER


def test_claims_verified_elsewhere_are_checked_by_the_issuer_they_name() -> None:
    rules = verifier()
    rules.check_claims(TokenFactory(issuer=OWN).claims(aud=RESOURCE))
    with pytest.raises(InvalidToken) as caught:
        rules.check_claims(TokenFactory(issuer=OWN).claims(aud="https://x.example/mcp"))
    assert caught.value.reason is Reason.WRONG_AUDIENCE
