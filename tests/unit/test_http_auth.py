"""Bearer authentication as a client sees it over HTTP: statuses, challenges, reason codes."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support.asgi import MCP_HEADERS, rpc, running
from tests.support.service import TWINS, FakeJwks, make_service
from tests.support.tokens import DROP, OTHER_CLIENT_ID, TokenFactory, rsa_key

pytestmark = TWINS  # every behaviour here, through both twins of each hot path

ADD = rpc("tools/call", {"name": "add", "arguments": {"a": 5, "b": 3}})
WHO = rpc("tools/call", {"name": "get_user_info", "arguments": {}})


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()


def bearer(token: str) -> dict[str, str]:
    return {**MCP_HEADERS, "Authorization": f"Bearer {token}"}


def challenge(response: httpx.Response) -> dict[str, str]:
    value = response.headers["www-authenticate"]
    assert value.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


def structured(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "error" not in body, body
    return body["result"]["structuredContent"]


async def test_a_call_without_a_token_gets_401_with_metadata_but_no_error() -> None:
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=ADD, headers=MCP_HEADERS)
    assert response.status_code == 401
    params = challenge(response)
    assert "error" not in params
    assert params["resource_metadata"] == (
        "http://testserver/.well-known/oauth-protected-resource/mcp"
    )


async def test_a_valid_token_calls_a_tool_without_initialize(tokens: TokenFactory) -> None:
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=ADD, headers=bearer(tokens.token()))
    assert structured(response) == {"result": 8}


async def test_get_user_info_reports_the_verified_caller(tokens: TokenFactory) -> None:
    token = tokens.token(sub="sub-123", username="bob", scope="mcp/tools openid")
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=WHO, headers=bearer(token))
    assert structured(response) == {
        "user": "sub-123",
        "username": "bob",
        "scope": "mcp/tools openid",
        "client_id": "testclient123",
        "token_use": "access",
        "groups": [],
    }


async def test_get_user_info_reports_groups_and_id_token_username(tokens: TokenFactory) -> None:
    token = tokens.token("id", **{"cognito:groups": ["premium", "staff"]})
    async with running(make_service(token_use="id").app) as client:
        info = structured(await client.post("/mcp", json=WHO, headers=bearer(token)))
    assert info["groups"] == ["premium", "staff"]
    assert info["username"] == "alice"
    assert info["token_use"] == "id"


BAD_TOKENS: dict[str, tuple[dict[str, Any], str]] = {
    "expired": ({"exp": 1_000_000_000, "iat": 999_990_000}, "expired"),
    "future-nbf": ({"nbf": 9_999_999_999}, "not_yet_valid"),
    "wrong-issuer": (
        {"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"},
        "wrong_issuer",
    ),
    "wrong-client": ({"client_id": OTHER_CLIENT_ID}, "wrong_client"),
    "no-exp": ({"exp": DROP}, "missing_claim"),
    "id-token": ({"token_use": "id"}, "wrong_token_use"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_a_refused_token_gets_401_invalid_token_with_its_reason(
    tokens: TokenFactory, case: str
) -> None:
    changes, reason = BAD_TOKENS[case]
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=ADD, headers=bearer(tokens.token(**changes)))
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"
    assert "resource_metadata" in challenge(response)
    assert response.json()["reason"] == reason


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "none"}, "unsupported_alg"),
        ({"kid": DROP}, "missing_kid"),
        ({"kid": "unknown"}, "unknown_kid"),
        ({"jku": "https://attacker.example/keys"}, "forbidden_header"),
    ],
)
async def test_a_bad_header_gets_401_with_its_reason(
    tokens: TokenFactory, header: dict[str, Any], reason: str
) -> None:
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=ADD, headers=bearer(tokens.token(headers=header)))
    assert response.status_code == 401
    assert response.json()["reason"] == reason


async def test_a_token_signed_by_another_key_gets_401_bad_signature(tokens: TokenFactory) -> None:
    async with running(make_service().app) as client:
        token = tokens.token(key=rsa_key("attacker"))
        response = await client.post("/mcp", json=ADD, headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["reason"] == "bad_signature"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Bearer not-a-jwt", "Bearer a.b.c", "bearer x.y.z", "Bearer é".encode()],
)
async def test_garbage_bearer_credentials_get_401_invalid_token(authorization: str | bytes) -> None:
    headers = {**MCP_HEADERS, "Authorization": authorization}
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=ADD, headers=headers)
    assert response.status_code == 401
    assert challenge(response).get("error") in {"invalid_token", None}


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Token abc", "Digest x"])
async def test_another_auth_scheme_counts_as_no_token(authorization: str) -> None:
    headers = {**MCP_HEADERS, "Authorization": authorization}
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=ADD, headers=headers)
    assert response.status_code == 401
    assert "error" not in challenge(response)


async def test_two_authorization_headers_are_refused(tokens: TokenFactory) -> None:
    token = tokens.token()
    headers = [(k, v) for k, v in MCP_HEADERS.items()]
    headers += [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=ADD, headers=headers)
    assert response.status_code == 401
    assert response.json()["reason"] == "malformed"


@pytest.mark.parametrize(
    ("spelling", "status"),
    [
        (["Bearer {t}"], 200),
        (["bearer {t}"], 200),
        (["BEARER {t}"], 200),
        (["Bearer   {t}  "], 200),
        (["Bearer {t}", "Bearer {t}"], 401),
        (["Bearer {t}", "Basic dXNlcjpwYXNz"], 401),
        (["Bearer {t}x"], 401),
        (["Bearer x{t}"], 401),
        (["Basic {t}"], 401),
    ],
)
async def test_a_cached_token_gets_the_same_answer_however_its_header_is_spelled(
    tokens: TokenFactory, spelling: list[str], status: int
) -> None:
    token = tokens.token()
    headers = [*MCP_HEADERS.items()] + [("Authorization", s.format(t=token)) for s in spelling]
    async with running(make_service().app) as client:
        assert structured(await client.post("/mcp", json=ADD, headers=bearer(token)))
        response = await client.post("/mcp", json=ADD, headers=headers)
    assert response.status_code == status


async def test_an_oversized_token_gets_401_oversized(tokens: TokenFactory) -> None:
    async with running(make_service(max_token_bytes=4096).app) as client:
        token = tokens.token(padding="x" * 8000)
        response = await client.post("/mcp", json=ADD, headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["reason"] == "oversized"


async def test_a_missing_required_scope_gets_403_insufficient_scope(tokens: TokenFactory) -> None:
    service = make_service(required_scopes="mcp/tools mcp/admin")
    async with running(service.app) as client:
        response = await client.post("/mcp", json=ADD, headers=bearer(tokens.token()))
    assert response.status_code == 403
    params = challenge(response)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "mcp/tools mcp/admin"
    assert "resource_metadata" in params


async def test_a_token_with_the_required_scopes_is_served(tokens: TokenFactory) -> None:
    service = make_service(required_scopes="mcp/tools")
    async with running(service.app) as client:
        response = await client.post("/mcp", json=ADD, headers=bearer(tokens.token()))
    assert structured(response) == {"result": 8}


async def test_the_no_token_challenge_names_the_required_scopes() -> None:
    async with running(make_service(required_scopes="mcp/tools").app) as client:
        response = await client.post("/mcp", json=ADD, headers=MCP_HEADERS)
    assert challenge(response)["scope"] == "mcp/tools"


TOOL_SCOPES = '{"get_user_info": ["mcp/profile"]}'


async def test_a_tool_scope_missing_gets_403_naming_that_scope(tokens: TokenFactory) -> None:
    async with running(make_service(tool_scopes=TOOL_SCOPES).app) as client:
        response = await client.post("/mcp", json=WHO, headers=bearer(tokens.token()))
    assert response.status_code == 403
    assert challenge(response)["scope"] == "mcp/profile"


async def test_a_tool_scope_does_not_affect_other_tools(tokens: TokenFactory) -> None:
    async with running(make_service(tool_scopes=TOOL_SCOPES).app) as client:
        response = await client.post("/mcp", json=ADD, headers=bearer(tokens.token()))
    assert structured(response) == {"result": 8}


async def test_a_tool_scope_granted_lets_the_tool_run(tokens: TokenFactory) -> None:
    token = tokens.token(scope="mcp/tools mcp/profile")
    async with running(make_service(tool_scopes=TOOL_SCOPES).app) as client:
        response = await client.post("/mcp", json=WHO, headers=bearer(token))
    assert structured(response)["scope"] == "mcp/tools mcp/profile"


async def test_a_tool_scope_hides_the_tool_from_callers_without_it(tokens: TokenFactory) -> None:
    async with running(make_service(tool_scopes=TOOL_SCOPES).app) as client:
        without = await client.post("/mcp", json=rpc("tools/list"), headers=bearer(tokens.token()))
        with_scope = await client.post(
            "/mcp",
            json=rpc("tools/list"),
            headers=bearer(tokens.token(scope="mcp/tools mcp/profile")),
        )
    assert [t["name"] for t in without.json()["result"]["tools"]] == ["add"]
    assert sorted(t["name"] for t in with_scope.json()["result"]["tools"]) == [
        "add",
        "get_user_info",
    ]


async def test_a_batch_smuggling_a_scoped_tool_call_gets_403(tokens: TokenFactory) -> None:
    batch = [ADD, {**WHO, "id": 2}]
    async with running(make_service(tool_scopes=TOOL_SCOPES).app) as client:
        response = await client.post("/mcp", json=batch, headers=bearer(tokens.token()))
    assert response.status_code == 403


async def test_no_reachable_jwks_gets_503_with_retry_after(tokens: TokenFactory) -> None:
    jwks = FakeJwks()
    jwks.up = False
    service = make_service(jwks)
    async with running(service.app) as client:
        response = await client.post("/mcp", json=ADD, headers=bearer(tokens.token()))
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["reason"] == "jwks_unavailable"
        jwks.up = True
        response = await client.post("/mcp", json=ADD, headers=bearer(tokens.token()))
    assert structured(response) == {"result": 8}


async def test_a_repeated_token_is_verified_once(tokens: TokenFactory) -> None:
    service = make_service()
    calls = 0
    verify = service.authenticator.verifier.verify

    async def counting(token: str) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return await verify(token)

    service.authenticator.verifier.verify = counting  # type: ignore[method-assign]
    token = tokens.token()
    async with running(service.app) as client:
        for _ in range(20):
            assert structured(await client.post("/mcp", json=ADD, headers=bearer(token)))
    assert calls == 1


def with_claims_of(token: str, donor: str) -> str:
    """`token`'s signature on `donor`'s header and payload: a forgery that ends exactly as
    `token` does (the in-process cache finds entries by a token's tail)."""
    return donor.rsplit(".", 1)[0] + "." + token.rsplit(".", 1)[1]


async def test_a_forgery_ending_like_a_cached_token_is_verified_and_refused(
    tokens: TokenFactory,
) -> None:
    token = tokens.token(sub="alice")
    forged = with_claims_of(token, tokens.token(sub="mallory", scope="admin"))
    assert forged[-64:] == token[-64:] and forged != token
    async with running(make_service().app) as client:
        assert structured(await client.post("/mcp", json=WHO, headers=bearer(token)))
        refused = await client.post("/mcp", json=WHO, headers=bearer(forged))
        again = await client.post("/mcp", json=WHO, headers=bearer(token))
    assert refused.status_code == 401
    assert refused.json()["reason"] == "bad_signature"
    assert structured(again)["user"] == "alice"  # the genuine entry was not displaced


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ],
)
async def test_public_routes_need_no_token(path: str) -> None:
    async with running(make_service().app) as client:
        response = await client.get(path)
    assert response.status_code == 200


async def test_a_public_route_ignores_a_bad_token() -> None:
    async with running(make_service().app) as client:
        response = await client.get("/healthz", headers={"Authorization": "Bearer junk"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/mcp/", "/unknown", "/MCP", "/mcp/../mcp", "/admin"])
async def test_every_other_path_needs_a_token(path: str) -> None:
    async with running(make_service().app) as client:
        response = await client.post(path, json=ADD, headers=MCP_HEADERS)
    assert response.status_code == 401


async def test_the_metadata_names_the_cognito_issuer_and_the_resource() -> None:
    service = make_service(public_base_url="https://mcp.example.com", required_scopes="mcp/tools")
    async with running(service.app) as client:
        document = (await client.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert document["resource"] == "https://mcp.example.com/mcp"
    assert document["authorization_servers"] == [
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool1"
    ]
    assert document["scopes_supported"] == ["mcp/tools"]
    assert document["bearer_methods_supported"] == ["header"]


async def test_the_challenge_uses_the_public_base_url() -> None:
    service = make_service(public_base_url="https://mcp.example.com")
    async with running(service.app) as client:
        response = await client.post("/mcp", json=ADD, headers=MCP_HEADERS)
    assert challenge(response)["resource_metadata"] == (
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    )


async def test_a_body_over_the_limit_is_refused_with_413(tokens: TokenFactory) -> None:
    big = rpc("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2, "pad": "x" * 5000}})
    async with running(make_service(max_body_bytes=4096).app) as client:
        response = await client.post("/mcp", json=big, headers=bearer(tokens.token()))
    assert response.status_code == 413


async def test_a_chunked_body_over_the_limit_is_refused_with_413(tokens: TokenFactory) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 1000

    async with running(make_service(max_body_bytes=4096).app) as client:
        response = await client.post("/mcp", content=chunks(), headers=bearer(tokens.token()))
    assert response.status_code == 413


async def test_a_chunked_body_under_the_limit_is_served(tokens: TokenFactory) -> None:
    import json

    payload = json.dumps(ADD).encode()

    async def chunks() -> Any:
        yield payload[:10]
        yield payload[10:]

    async with running(make_service(max_body_bytes=4096).app) as client:
        response = await client.post("/mcp", content=chunks(), headers=bearer(tokens.token()))
    assert structured(response) == {"result": 8}


async def test_cors_preflight_from_an_allowed_origin_is_answered() -> None:
    service = make_service(cors_allow_origins="https://inspector.example")
    async with running(service.app) as client:
        response = await client.options(
            "/mcp",
            headers={
                "Origin": "https://inspector.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://inspector.example"


async def test_cors_exposes_the_challenge_to_an_allowed_origin() -> None:
    service = make_service(cors_allow_origins="https://inspector.example")
    async with running(service.app) as client:
        response = await client.post(
            "/mcp", json=ADD, headers={**MCP_HEADERS, "Origin": "https://inspector.example"}
        )
    assert response.status_code == 401
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "www-authenticate" in exposed
    assert "ratelimit" in exposed


async def test_cors_is_off_by_default() -> None:
    async with running(make_service().app) as client:
        response = await client.post(
            "/mcp", json=ADD, headers={**MCP_HEADERS, "Origin": "https://evil.example"}
        )
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [({"a": 5, "b": 3}, 8), ({"a": 2.5, "b": 0.25}, 2.75), ({"a": -1, "b": 1}, 0)],
)
async def test_add_returns_the_sum(
    tokens: TokenFactory, arguments: dict[str, Any], expected: float
) -> None:
    call = rpc("tools/call", {"name": "add", "arguments": arguments})
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=call, headers=bearer(tokens.token()))
    assert structured(response) == {"result": expected}


@pytest.mark.parametrize(
    "arguments",
    [{"a": "1e400", "b": 1}, {"a": 1e308, "b": 1e308}, {"a": "five", "b": 1}, {"a": 1}],
)
async def test_add_refuses_what_is_not_a_finite_sum(
    tokens: TokenFactory, arguments: dict[str, Any]
) -> None:
    call = rpc("tools/call", {"name": "add", "arguments": arguments})
    async with running(make_service().app) as client:
        response = await client.post("/mcp", json=call, headers=bearer(tokens.token()))
    body = response.json()
    assert "error" in body or body["result"]["isError"] is True
