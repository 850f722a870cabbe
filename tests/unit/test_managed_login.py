"""The embedded issuer playing Cognito managed login, through its HTTP endpoints."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_service.errors import IssuerKeyError
from mcp_service.managed_login import ManagedLogin, User, generated_user
from tests.support.browser import read_form
from tests.support.tokens import kid_of, rsa_key

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_mcpLocal01"
CALLBACK = "http://127.0.0.1:9000/oauth/callback"
VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")


def login() -> ManagedLogin:
    return ManagedLogin(
        rsa_key(),
        kid_of(rsa_key()),
        issuer=ISSUER,
        base_url="http://127.0.0.1:9000",
        client_id="local-client",
        callbacks=[CALLBACK],
        users=[User("ada", "pw", ("admins",))],
        scopes=["mcp/tools"],
        lifetime=3600,
    )


def client(managed: ManagedLogin) -> httpx.AsyncClient:
    async def token(request: Request) -> Response:
        form = dict(await request.form())
        return await managed.grant(str(form["grant_type"]), {k: str(v) for k, v in form.items()})

    app = Starlette(
        routes=[
            Route("/oauth2/authorize", managed.authorize_endpoint, methods=["GET", "POST"]),
            Route("/oauth2/token", token, methods=["POST"]),
        ]
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


QUERY = {
    "response_type": "code",
    "client_id": "local-client",
    "redirect_uri": CALLBACK,
    "state": "st",
    "scope": "openid mcp/tools",
    "code_challenge": CHALLENGE.decode(),
    "code_challenge_method": "S256",
}


async def sign_in(http: httpx.AsyncClient, password: str = "pw") -> httpx.Response:
    page = await http.get(f"/oauth2/authorize?{urlencode(QUERY)}")
    fields = read_form(page.text).fields
    assert "username" in fields and "password" in fields
    return await http.post(
        "/oauth2/authorize", data={**fields, "username": "ada", "password": password}
    )


async def test_a_person_signs_in_and_the_code_buys_cognito_shaped_tokens() -> None:
    async with client(login()) as http:
        answer = await sign_in(http)
        assert answer.status_code == 302
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        assert query["state"] == ["st"]
        form = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": CALLBACK,
            "code_verifier": VERIFIER,
        }
        tokens = (await http.post("/oauth2/token", data=form)).json()
        again = await http.post("/oauth2/token", data=form)
        refreshed = await http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
    access = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert "aud" not in access  # as Cognito's access tokens
    assert access["client_id"] == "local-client"
    assert access["username"] == "ada"
    assert access["cognito:groups"] == ["admins"]
    assert access["scope"] == "openid mcp/tools"
    assert again.json()["error"] == "invalid_grant"  # a code is used once
    assert "refresh_token" not in refreshed.json()  # Cognito does not rotate
    assert refreshed.json()["access_token"]


async def test_a_wrong_password_gets_the_login_page_again() -> None:
    async with client(login()) as http:
        answer = await sign_in(http, "wrong")
    assert answer.status_code == 401
    assert "location" not in answer.headers


@pytest.mark.parametrize(
    "change",
    [{"redirect_uri": "http://evil.example/cb"}, {"client_id": "x"}, {"response_type": "token"}],
)
async def test_an_unknown_client_or_callback_is_refused(change: dict[str, str]) -> None:
    async with client(login()) as http:
        page = await http.get(f"/oauth2/authorize?{urlencode({**QUERY, **change})}")
    assert page.status_code == 400


async def test_a_wrong_pkce_verifier_is_refused() -> None:
    async with client(login()) as http:
        answer = await sign_in(http)
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
        refused = await http.post("/oauth2/token", data={**form, "code_verifier": "w" * 50})
    assert refused.json()["error"] == "invalid_grant"


def test_discovery_omits_what_cognito_omits() -> None:
    document = login().discovery()
    assert "code_challenge_methods_supported" not in document
    assert "registration_endpoint" not in document


def test_the_generated_user_is_written_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "local-user.json"
    first = generated_user(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert generated_user(path) == first


def test_a_generated_user_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "local-user.json"
    generated_user(path)
    path.chmod(0o644)
    with pytest.raises(IssuerKeyError, match="chmod 600"):
        generated_user(path)
