"""The JWKS endpoint unreachable with no keys cached: 503 with Retry-After, never 401 or 500,
and service resumes on its own once the endpoint answers."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, ServiceProcess, free_port
from tests.support.tokens import TokenFactory, jwks_of, rsa_key


def test_unreachable_jwks_gives_503_then_recovers(tmp_path: Path) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH, port=free_port())
    env = pool_env(jwks.url, JWKS_TIMEOUT_SECONDS="2", JWKS_FAILURE_BACKOFF_SECONDS="0.5")
    token = TokenFactory().token()
    with ServiceProcess(env, tmp_path) as service:
        refused = call_add(service.url, token)
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["reason"] == "jwks_unavailable"

        with jwks.running():
            deadline = time.monotonic() + 10
            while True:
                response = call_add(service.url, token)
                if response.status_code == 200 or time.monotonic() > deadline:
                    break
                assert response.status_code == 503
                time.sleep(0.2)
            assert response.status_code == 200, response.text
            assert response.json()["result"]["structuredContent"] == {"result": 8}
            assert jwks.requests >= 1


def test_a_jwks_endpoint_that_answers_an_error_gives_503(tmp_path: Path) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), "/elsewhere/jwks.json")
    env = pool_env(f"http://127.0.0.1:{jwks.port}/missing.json")
    with jwks.running(), ServiceProcess(env, tmp_path) as service:
        response = call_add(service.url, TokenFactory().token())
    assert response.status_code == 503
    assert "retry-after" in response.headers
