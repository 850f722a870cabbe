"""The login facade's rules that need no server: redirect URIs, the sealed state, the
single-use and rotation semantics, metadata-document addresses and the settings."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_service.errors import SettingsError
from mcp_service.oauth.cimd import MetadataDocumentError, MetadataDocuments, parse_document
from mcp_service.oauth.redirects import matches, registration_problem
from mcp_service.oauth.state import Box, MemoryState
from mcp_service.settings import Settings, load_settings

REGISTERED = ["http://127.0.0.1:8765/callback", "https://app.example/cb", "cursor://cb/x"]


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8765/callback",
        "http://127.0.0.1:1/callback",  # another loopback port (RFC 8252 7.3)
        "https://app.example/cb",
        "cursor://cb/x",
    ],
)
def test_a_registered_redirect_uri_matches(uri: str) -> None:
    assert matches(uri, REGISTERED)


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8765/callback/",
        "http://127.0.0.1/callback",  # no port: not the port exception
        "http://localhost:8765/callback",
        "http://127.0.0.1:8765/callback?next=evil",
        "http://127.0.0.1:8765/callback#x",
        "http://evil@127.0.0.1:8765/callback",
        "https://app.example:444/cb",  # only loopback http may change its port
        "https://app.example/cb/",
        "https://APP.example/cb",
        "cursor://cb/y",
        "",
    ],
)
def test_anything_else_does_not(uri: str) -> None:
    assert not matches(uri, REGISTERED)


@pytest.mark.parametrize(
    ("uri", "application_type"),
    [
        ("javascript:alert(1)", "native"),
        ("data:text/html,x", "native"),
        ("http://app.example/cb", "native"),
        ("http://127.0.0.1/cb", "web"),
        ("https://localhost/cb", "web"),
        ("cursor://cb", "web"),
        ("https://app.example/cb#frag", "web"),
        ("https://user@app.example/cb", "web"),
        ("https://app.example\\@evil.example/cb", "web"),
        ("/relative/cb", "native"),
        ("https://" + "a" * 2100, "web"),
    ],
)
def test_a_redirect_uri_a_client_may_not_register(uri: str, application_type: str) -> None:
    assert registration_problem(uri, application_type) is not None


@pytest.mark.parametrize(
    ("uri", "application_type"),
    [
        ("http://127.0.0.1:3000/cb", "native"),
        ("http://localhost/cb", "native"),
        ("cursor://anysphere.cursor-retrieval/oauth/callback", "native"),
        ("com.example.app:/oauth", "native"),
        ("https://app.example/cb", "web"),
    ],
)
def test_a_redirect_uri_a_client_may_register(uri: str, application_type: str) -> None:
    assert registration_problem(uri, application_type) is None


def test_a_sealed_value_opens_only_in_its_own_context() -> None:
    box = Box(["a" * 32])
    sealed = box.seal({"sub": "ada"}, "code:1")
    assert box.open(sealed, "code:1") == {"sub": "ada"}
    assert box.open(sealed, "code:2") is None
    assert "ada" not in sealed


def test_a_seal_survives_a_secret_rotation_and_nothing_else_opens_it() -> None:
    sealed = Box(["a" * 32]).seal({"n": 1}, "k")
    assert Box(["b" * 32, "a" * 32]).open(sealed, "k") == {"n": 1}
    assert Box(["b" * 32]).open(sealed, "k") is None
    assert Box(["a" * 32]).open(sealed[:-2] + "AA", "k") is None


async def test_a_code_is_redeemed_once_and_a_replay_is_recognised() -> None:
    state = MemoryState(Box.ephemeral())
    from mcp_service.oauth.state import digest

    await state.put("code", digest("c0de"), {"family": "f1"}, 300)
    assert await state.redeem("c0de", 300) == ("redeemed", {"family": "f1"})
    assert await state.redeem("c0de", 300) == ("replayed", {"family": "f1"})
    assert await state.redeem("never-issued", 300) == ("unknown", None)


async def test_a_pending_authorization_is_taken_once() -> None:
    state = MemoryState(Box.ephemeral())
    await state.put("pending", "t", {"x": 1}, 60)
    assert await state.take("pending", "t") == {"x": 1}
    assert await state.take("pending", "t") is None


async def test_a_refresh_family_rotates_and_ends_on_reuse() -> None:
    state = MemoryState(Box.ephemeral())
    await state.start_family("f", "f.one", {"sub": "ada"}, 600)
    assert await state.rotate("f", "f.guess", "f.x") == ("invalid", None)  # family left alone
    assert await state.rotate("f", "f.one", "f.two") == ("rotated", {"sub": "ada"})
    assert await state.rotate("f", "f.one", "f.three") == ("reused", None)
    assert await state.rotate("f", "f.two", "f.four") == ("unknown", None)  # ended


async def test_state_expires() -> None:
    now = [1000.0]
    state = MemoryState(Box.ephemeral(), clock=lambda: now[0])
    await state.put("client", "c", {"x": 1}, 10)
    await state.start_family("f", "f.one", {}, 10)
    now[0] += 11
    assert await state.get("client", "c") is None
    assert await state.rotate("f", "f.one", "f.two") == ("unknown", None)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/client.json",
        "https://localhost/client.json",
        "https://[::1]/client.json",
        "https://169.254.169.254/latest",
        "https://10.1.2.3/client.json",
        "https://192.168.0.1/client.json",
        "http://app.example/client.json",
        "https://app.example/",
        "https://user@app.example/client.json",
    ],
)
async def test_a_metadata_document_is_never_fetched_from_a_forbidden_address(url: str) -> None:
    with pytest.raises(MetadataDocumentError):
        await MetadataDocuments().fetch(url)


async def test_allowing_loopback_still_refuses_link_local_and_private_addresses() -> None:
    documents = MetadataDocuments(allow_loopback=True)
    for url in ("https://169.254.169.254/latest", "https://10.1.2.3/client.json"):
        with pytest.raises(MetadataDocumentError, match="not a public address"):
            await documents.fetch(url)


URL = "https://app.example/client.json"


@pytest.mark.parametrize(
    "document",
    [
        {"client_id": "https://other.example/c.json", "redirect_uris": ["http://127.0.0.1/cb"]},
        {"client_id": URL, "redirect_uris": []},
        {"client_id": URL, "redirect_uris": ["javascript:x"]},
        {"client_id": URL, "redirect_uris": ["http://localhost:*/cb"]},
        {"client_id": URL, "redirect_uris": ["http://a.example/cb"]},
        {
            "client_id": URL,
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
        },
        {
            "client_id": URL,
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        ["not", "an", "object"],
    ],
)
def test_a_metadata_document_held_to_the_registration_rules(document: Any) -> None:
    import json

    with pytest.raises(MetadataDocumentError):
        parse_document(json.dumps(document).encode(), URL)


def problems(**values: Any) -> list[str]:
    try:
        settings = load_settings(_env_file=None, **values)
    except SettingsError as exc:
        return [name for name, _ in exc.problems]
    return [name for name, _ in settings.serve_problems()]


POOL = {
    "app_env": "staging",
    "cognito_region": "eu-west-1",
    "user_pool_id": "eu-west-1_Abc",
    "app_client_id": "c",
}


def test_the_facade_outside_local_mode_needs_its_settings() -> None:
    found = problems(**POOL, oauth_proxy=True)
    assert {"PUBLIC_BASE_URL", "COGNITO_DOMAIN", "OAUTH_PROXY_CLIENT_ID"} <= set(found)
    assert "OAUTH_PROXY_SIGNING_KEYS" in found


def test_the_facade_is_off_by_default_with_a_real_pool() -> None:
    assert problems(**POOL) == []
    assert not Settings(_env_file=None, **POOL).oauth_proxy_enabled  # type: ignore[call-arg]


def test_the_facade_is_on_by_default_with_the_embedded_issuer() -> None:
    assert Settings(_env_file=None, app_env="local").oauth_proxy_enabled  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["cimd_allow_loopback", "cimd_ca_file"])
def test_the_test_only_cimd_settings_are_refused_in_production(name: str) -> None:
    value: Any = True if name == "cimd_allow_loopback" else "/tmp/ca.pem"
    assert name.upper() in problems(**{**POOL, "app_env": "production", name: value})


@pytest.mark.parametrize("base", ["http://mcp.example.com", "https://mcp.example.com/sub"])
def test_the_facade_refuses_an_issuer_url_clients_cannot_trust(base: str) -> None:
    assert "PUBLIC_BASE_URL" in problems(app_env="local", oauth_proxy=True, public_base_url=base)


def test_a_cimd_ca_file_that_is_not_there_is_refused() -> None:
    assert "CIMD_CA_FILE" in problems(app_env="local", cimd_ca_file="/nonexistent/ca.pem")


def test_a_session_may_not_outlive_its_revocation() -> None:
    found = problems(
        app_env="local", oauth_proxy_refresh_token_seconds=200_000, revocation_ttl_seconds=90_000
    )
    assert "OAUTH_PROXY_REFRESH_TOKEN_SECONDS" in found


@pytest.mark.parametrize(
    "keys", ["not a pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"]
)
def test_unusable_signing_keys_are_refused_without_quoting_them(keys: str) -> None:
    try:
        settings = Settings(_env_file=None, **POOL, oauth_proxy=True, oauth_proxy_signing_keys=keys)  # type: ignore[call-arg]
        found = settings.serve_problems()
    except SettingsError as exc:
        found = exc.problems
    messages = [message for name, message in found if name == "OAUTH_PROXY_SIGNING_KEYS"]
    assert messages
    assert all(keys not in message and "AAAA" not in message for message in messages)


@pytest.mark.parametrize(
    "value", ["[]", "nope", '{"ada": {"groups": []}}', '{"ada": {"password": ""}}']
)
def test_bad_local_users_are_refused(value: str) -> None:
    assert "LOCAL_USERS" in problems(app_env="local", local_users=value)


async def test_the_memory_store_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_service.oauth.state as state_module

    monkeypatch.setattr(state_module, "PRUNE_AT", 10)
    monkeypatch.setattr(state_module, "MAX_ENTRIES", 8)
    state = MemoryState(Box.ephemeral())
    for n in range(30):
        await state.put("client", str(n), {"n": n}, 3600)
    assert await state.get("client", "0") is None  # the oldest went
    assert await state.get("client", "29") == {"n": 29}


@given(port=st.integers(1, 65535), path=st.from_regex(r"\A/[a-z0-9/]{0,20}\Z"))
def test_a_loopback_registration_matches_any_port_of_its_exact_path(port: int, path: str) -> None:
    registered = [f"http://127.0.0.1:8000{path}"]
    assert matches(f"http://127.0.0.1:{port}{path}", registered)
    assert not matches(f"http://127.0.0.1:{port}{path}x", registered)
    assert not matches(f"https://127.0.0.1:{port}{path}", registered)


@given(uri=st.text(max_size=60))
def test_no_string_matches_a_web_redirect_uri_but_itself(uri: str) -> None:
    registered = ["https://app.example/cb"]
    assert matches(uri, registered) == (uri == registered[0])
