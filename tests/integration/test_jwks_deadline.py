"""A JWKS endpoint that is slow or failing bounds what it costs: JWKS_TIMEOUT_SECONDS bounds a
whole download (connect, headers, body), and readiness probes share the request path's
backoff and single flight instead of downloading once each."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, ServiceProcess
from tests.support.tokens import TokenFactory, jwks_of, rsa_key


def test_a_jwks_served_a_byte_at_a_time_gives_503_within_the_timeout(tmp_path: Path) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    jwks.trickle = 0.25  # ~1 KB of document: minutes to arrive whole
    env = pool_env(jwks.url, JWKS_TIMEOUT_SECONDS="2", JWKS_FAILURE_BACKOFF_SECONDS="5")
    with jwks.running(), ServiceProcess(env, tmp_path) as service:
        started = time.monotonic()
        response = call_add(service.url, TokenFactory().token(), timeout=30)
        elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert elapsed < 4.5, f"the request waited {elapsed:.1f} s for a 2 s JWKS timeout"


def test_readiness_probes_share_the_backoff_of_the_request_path(tmp_path: Path) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    jwks.status = 500
    env = pool_env(jwks.url, JWKS_FAILURE_BACKOFF_SECONDS="30", READINESS_INTERVAL_SECONDS="3600")
    with jwks.running(), ServiceProcess(env, tmp_path) as service:
        time.sleep(0.5)  # the start-up attempt has failed by now
        before = jwks.requests
        with httpx.Client(base_url=service.url, timeout=10) as client:
            statuses = {client.get("/readyz").status_code for _ in range(50)}
        downloads = jwks.requests - before
    assert statuses == {503}
    assert downloads <= 1, f"50 probes made {downloads} JWKS downloads"
