"""Settings: parsing, derived values and the per-command checks behind exit status 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_service.settings import SettingsError, load_settings
from tests.support.processes import SETTING_NAMES


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env or exported variable leaks into these tests."""
    monkeypatch.chdir(tmp_path)
    import os

    for name in list(os.environ):
        if name.upper() in SETTING_NAMES:
            monkeypatch.delenv(name)


def problems(**env: Any) -> list[str]:
    try:
        settings = load_settings(**env)
    except SettingsError as exc:
        return [name for name, _ in exc.problems]
    return [name for name, _ in settings.serve_problems()]


def test_the_defaults_run_the_embedded_issuer_on_loopback() -> None:
    settings = load_settings()
    assert settings.embedded_issuer
    assert settings.serve_problems("127.0.0.1") == []
    assert settings.token_endpoint == "http://127.0.0.1:8000/oauth2/token"


def test_variables_are_read_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("cognito_region", "eu-west-1")
    monkeypatch.setenv("User_Pool_Id", "eu-west-1_Abc123")
    settings = load_settings()
    assert settings.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc123"


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("COGNITO_REGION=ap-south-1\nUSER_POOL_ID=ap-south-1_Xyz\n")
    assert load_settings().pool_id == "ap-south-1_Xyz"


def test_app_client_id_takes_a_comma_separated_list() -> None:
    settings = load_settings(app_client_id="one, two,three")
    assert settings.accepted_client_ids == {"one", "two", "three"}


def test_the_jwks_url_defaults_to_the_pool_and_can_be_overridden() -> None:
    pool = {"cognito_region": "us-west-2", "user_pool_id": "us-west-2_Pool"}
    assert load_settings(**pool).jwks_url == (
        "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_Pool/.well-known/jwks.json"
    )
    overridden = load_settings(**pool, cognito_jwks_url="http://127.0.0.1:5000/p/jwks.json")
    assert overridden.jwks_url == "http://127.0.0.1:5000/p/jwks.json"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"app_env": "prod"}, "APP_ENV"),
        ({"token_use": "refresh"}, "TOKEN_USE"),
        ({"cognito_region": "mars"}, "COGNITO_REGION"),
        ({"user_pool_id": "no-underscore"}, "USER_POOL_ID"),
        ({"cognito_jwks_url": "ftp://x/jwks"}, "COGNITO_JWKS_URL"),
        ({"token_url": "not a url"}, "TOKEN_URL"),
        ({"redis_url": "http://redis"}, "REDIS_URL"),
        ({"tool_scopes": "{not json"}, "TOOL_SCOPES"),
        ({"tool_scopes": "[1]"}, "TOOL_SCOPES"),
        ({"required_scopes": 'bad"scope'}, "REQUIRED_SCOPES"),
        ({"jwt_leeway_seconds": "-1"}, "JWT_LEEWAY_SECONDS"),
        ({"max_body_bytes": "lots"}, "MAX_BODY_BYTES"),
        ({"cors_allow_origins": "not-an-origin"}, "CORS_ALLOW_ORIGINS"),
    ],
)
def test_a_malformed_value_is_reported_against_its_variable(
    env: dict[str, str], variable: str
) -> None:
    assert variable in problems(**env)


def test_production_requires_the_cognito_settings() -> None:
    assert set(problems(app_env="production")) == {
        "COGNITO_REGION",
        "USER_POOL_ID",
        "APP_CLIENT_ID",
    }


def test_production_refuses_the_embedded_issuer() -> None:
    settings = load_settings(app_env="production")
    assert not settings.embedded_issuer


def test_production_with_a_pool_is_accepted() -> None:
    assert (
        problems(
            app_env="production",
            cognito_region="us-east-1",
            user_pool_id="us-east-1_Abc",
            app_client_id="client",
        )
        == []
    )


def test_production_refuses_a_plain_http_jwks_url() -> None:
    assert "COGNITO_JWKS_URL" in problems(
        app_env="production",
        cognito_region="us-east-1",
        user_pool_id="us-east-1_Abc",
        app_client_id="client",
        cognito_jwks_url="http://jwks.internal/keys.json",
    )


def test_redis_without_a_sealing_secret_is_accepted() -> None:
    assert problems(redis_url="redis://127.0.0.1:6379/0") == []


PRODUCTION = {
    "app_env": "production",
    "cognito_region": "us-east-1",
    "user_pool_id": "us-east-1_Abc",
    "app_client_id": "client",
}


@pytest.mark.parametrize(
    "redis",
    [
        {"redis_url": "rediss://redis.internal:6379/0", "redis_tls_verify": "none"},
        {"redis_url": "rediss://redis.internal:6379/0?ssl_cert_reqs=none"},
    ],
    ids=["setting", "url"],
)
def test_production_refuses_redis_tls_without_verification(redis: dict[str, str]) -> None:
    assert problems(**PRODUCTION, **redis) == ["REDIS_TLS_VERIFY"]


def test_redis_tls_without_verification_is_accepted_outside_production() -> None:
    assert problems(redis_url="rediss://127.0.0.1:6379/0", redis_tls_verify="none") == []


@pytest.mark.parametrize(
    "setting", ["redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file"]
)
def test_redis_tls_files_need_a_rediss_url(setting: str, tmp_path: Path) -> None:
    (tmp_path / "x.pem").write_text("")
    assert problems(redis_url="redis://127.0.0.1:6379/0", **{setting: str(tmp_path / "x.pem")}) == [
        setting.upper()
    ]


def test_a_ca_file_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    assert problems(
        redis_url="rediss://127.0.0.1:6379/0", redis_tls_ca_file=str(tmp_path / "ca.pem")
    ) == ["REDIS_TLS_CA_FILE"]


@pytest.mark.parametrize(
    "url", ["", "unix:///run/redis.sock", "redis://127.0.0.1:6379/2"], ids=["none", "unix", "db"]
)
def test_cluster_mode_needs_a_tcp_url_to_database_zero(url: str) -> None:
    assert len(problems(redis_url=url, redis_cluster="true")) == 1


def test_a_short_token_cache_secret_is_refused() -> None:
    assert "TOKEN_CACHE_SECRET" in problems(token_cache_secret="short")


def test_token_cache_secret_takes_a_rotation_list() -> None:
    settings = load_settings(token_cache_secret=f"{'n' * 32},{'o' * 32}")
    assert [s.get_secret_value()[0] for s in settings.token_cache_secret] == ["n", "o"]


def test_a_pool_outside_its_region_is_refused() -> None:
    assert "USER_POOL_ID" in problems(
        cognito_region="us-east-1", user_pool_id="eu-west-1_Abc", app_client_id="c"
    )


def test_serve_does_not_need_the_client_secret() -> None:
    settings = load_settings(
        app_env="staging", cognito_region="us-east-1", user_pool_id="us-east-1_A", app_client_id="c"
    )
    assert settings.serve_problems() == []
    assert {name for name, _ in settings.client_problems()} == {
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
        "TOKEN_URL",
    }


def test_the_embedded_issuer_refuses_a_non_loopback_bind() -> None:
    settings = load_settings()
    assert [name for name, _ in settings.serve_problems("0.0.0.0")] == ["LOCAL_ISSUER_ALLOW_REMOTE"]


def test_allowing_remote_needs_a_secret_of_its_own() -> None:
    settings = load_settings(local_issuer_allow_remote=True)
    assert [name for name, _ in settings.serve_problems("0.0.0.0")] == ["OAUTH_CLIENT_SECRET"]
    settings = load_settings(
        local_issuer_allow_remote=True, oauth_client_secret="a-long-compose-secret"
    )
    assert settings.serve_problems("0.0.0.0") == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"])
def test_loopback_addresses_are_allowed_for_the_embedded_issuer(host: str) -> None:
    assert load_settings().serve_problems(host) == []


def test_locally_the_token_url_follows_the_mcp_url() -> None:
    settings = load_settings(mcp_url="http://127.0.0.1:9123/mcp")
    assert settings.token_endpoint == "http://127.0.0.1:9123/oauth2/token"


def test_the_client_secret_is_not_shown_in_reprs() -> None:
    settings = load_settings(oauth_client_secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings.model_dump())
