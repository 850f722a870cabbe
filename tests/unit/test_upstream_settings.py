"""UPSTREAMS as an operator writes it: each accepted auth kind, each mistake as one line naming
UPSTREAMS and the namespace, and credentials that must be in the environment at start."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_service.errors import SettingsError
from mcp_service.served import missing_credentials, unknown_tools
from mcp_service.settings import load_settings
from mcp_service.upstreamconfig import BearerEnv, ClientCredentials, Upstream

URL = "https://docs.example.com/mcp"
GRANT = {
    "token_url": "https://auth.example.com/token",
    "client_id": "c1",
    "client_secret_env": "DOCS_SECRET",
    "scopes": ["docs/read"],
}


def upstreams(value: Any) -> dict[str, Upstream]:
    text = value if isinstance(value, str) else json.dumps(value)
    return load_settings(_env_file=None, upstreams=text).upstreams


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("none", None),
        ({"bearer_env": "DOCS_TOKEN"}, BearerEnv("DOCS_TOKEN")),
        (
            {"client_credentials": GRANT},
            ClientCredentials(
                "https://auth.example.com/token", "c1", "DOCS_SECRET", ("docs/read",)
            ),
        ),
    ],
)
def test_each_auth_kind_is_accepted(auth: Any, expected: Any) -> None:
    assert upstreams({"docs": {"url": URL, "auth": auth}}) == {"docs": Upstream(URL, expected)}


def test_an_upstream_without_auth_or_timeout_gets_none_and_30_seconds() -> None:
    assert upstreams({"docs": {"url": URL}})["docs"] == Upstream(URL, None, 30.0)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('["docs"]', "must be a JSON object"),
        ("{", "must be a JSON object"),
        ({"do_cs": {"url": URL}}, "'do_cs' is not a namespace"),
        ({"docs": "https://x"}, "docs: must be an object"),
        ({"docs": {"url": URL, "timeout": 3}}, "docs: unknown field(s) timeout"),
        ({"docs": {}}, "docs.url: an absolute http or https URL is required"),
        ({"docs": {"url": "ftp://x/mcp"}}, "docs.url: not an absolute http or https URL"),
        ({"docs": {"url": "https://u:p@x/mcp"}}, "docs.url: credentials go in auth"),
        ({"docs": {"url": URL, "timeout_seconds": 0}}, "docs.timeout_seconds"),
        ({"docs": {"url": URL, "timeout_seconds": "5"}}, "docs.timeout_seconds"),
        ({"docs": {"url": URL, "auth": "bearer"}}, "docs.auth:"),
        ({"docs": {"url": URL, "auth": {"bearer_env": "a b"}}}, "docs.auth.bearer_env"),
        (
            {"docs": {"url": URL, "auth": {"client_credentials": {"client_id": "c"}}}},
            "docs.auth.client_credentials",
        ),
        (
            {"docs": {"url": URL, "auth": {"client_credentials": {**GRANT, "scopes": "x"}}}},
            "docs.auth.client_credentials.scopes",
        ),
    ],
)
def test_a_malformed_upstream_is_one_line_naming_it(value: Any, says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        upstreams(value)
    [(variable, message)] = raised.value.problems
    assert variable == "UPSTREAMS"
    assert says in message


def test_a_credential_missing_from_the_environment_names_the_variable_not_a_value() -> None:
    settings = load_settings(
        _env_file=None,
        upstreams=json.dumps(
            {
                "docs": {"url": URL, "auth": {"bearer_env": "DOCS_TOKEN"}},
                "crm": {"url": URL, "auth": {"client_credentials": GRANT}},
            }
        ),
    )
    assert missing_credentials(settings, {"DOCS_TOKEN": "t0ken"}) == [
        ("UPSTREAMS", "crm: the environment variable DOCS_SECRET is not set")
    ]


def test_names_under_an_upstreams_namespace_are_checked_for_the_namespace_only() -> None:
    settings = load_settings(
        _env_file=None,
        upstreams=json.dumps({"docs": {"url": URL}}),
        tool_scopes=json.dumps({"docs_anything": ["s"], "wiki_page": ["s"]}),
    )
    problems = unknown_tools(settings, frozenset({"add"}), namespaces=settings.upstreams)
    assert [message.split(" ")[0] for _, message in problems] == ["'wiki_page'"]


async def test_a_client_credentials_token_is_renewed_shortly_before_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx2

    from mcp_service import upstreams as module

    requests: list[httpx2.Request] = []

    def token_endpoint(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        return httpx2.Response(200, json={"access_token": f"t{len(requests)}", "expires_in": 100})

    grant = ClientCredentials("https://auth.example.com/token", "c1", "X", ("docs/read",))
    auth = module.ClientCredentialsAuth(
        grant, "s3cret", 5, transport=httpx2.MockTransport(token_endpoint)
    )
    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    assert [await auth.token(), await auth.token()] == ["t1", "t1"]
    now[0] += 89  # a tenth of its life (10 s) before expiry it is still used
    assert await auth.token() == "t1"
    now[0] += 2
    assert await auth.token() == "t2"
    body = requests[0].content.decode()
    assert "grant_type=client_credentials" in body and "scope=docs%2Fread" in body
