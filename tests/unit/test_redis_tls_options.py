"""One TLS decision for every Redis connection: the REDIS_TLS_* settings over the URL's `ssl_*`
parameters over the defaults, and the failures a log line names."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from cache.tls import RedisTls, describe, without_tls_parameters

URL = "rediss://:token@redis.internal:6379/0"


def test_a_plain_url_has_no_tls() -> None:
    assert RedisTls.of("redis://redis.internal:6379/0", ca_file="/ca.pem") is None


def test_rediss_defaults_to_the_system_trust_store_verified() -> None:
    assert RedisTls.of(URL) == RedisTls(verify=True, check_hostname=True)


@pytest.mark.parametrize(
    ("query", "settings", "expected"),
    [
        ("?ssl_ca_certs=/url-ca.pem", {}, {"ca_file": "/url-ca.pem"}),
        ("?ssl_ca_certs=/url-ca.pem", {"ca_file": "/ca.pem"}, {"ca_file": "/ca.pem"}),
        (
            "?ssl_certfile=/c.pem&ssl_keyfile=/k.pem",
            {},
            {"cert_file": "/c.pem", "key_file": "/k.pem"},
        ),
        ("?ssl_cert_reqs=none", {}, {"verify": False, "check_hostname": False}),
        ("?ssl_cert_reqs=CERT_NONE", {}, {"verify": False, "check_hostname": False}),
        ("", {"verify": "none"}, {"verify": False, "check_hostname": False}),
        ("?ssl_check_hostname=false", {}, {"check_hostname": False}),
    ],
    ids=[
        "url-ca",
        "setting-wins",
        "url-client-cert",
        "url-none",
        "url-cert-none",
        "setting-none",
        "no-hostname",
    ],
)
def test_settings_win_over_the_urls_parameters(
    query: str, settings: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert RedisTls.of(URL + query, **settings) == RedisTls(**expected)


def test_the_url_redis_py_sees_has_no_ssl_parameters_left() -> None:
    url = URL + "?ssl_ca_certs=/ca.pem&ssl_cert_reqs=none&socket_keepalive=true"
    assert without_tls_parameters(url) == URL + "?socket_keepalive=true"


def test_verify_none_makes_a_context_that_checks_nothing() -> None:
    context = RedisTls(verify=False, check_hostname=False).context()
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError(
            "Error 1 connecting to 127.0.0.1:6380. [SSL: CERTIFICATE_VERIFY_FAILED] "
            "certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)."
        ),
        ssl.SSLCertVerificationError(1, "certificate verify failed"),
    ],
    ids=["redis-py", "ssl"],
)
def test_an_untrusted_certificate_is_named(error: Exception) -> None:
    assert "TLS certificate not trusted" in describe(error)


def test_other_failures_say_only_their_type() -> None:
    assert describe(ConnectionError("Error 111 connecting to host:6379 with password x")) == (
        "ConnectionError"
    )
