"""The JWKS endpoint goes down, then comes back with a rotated key set."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, ServiceProcess
from tests.support.tokens import TokenFactory, jwks_of, rsa_key


def test_cached_keys_serve_through_an_outage_and_rotated_keys_work_after(tmp_path: Path) -> None:
    old, new = TokenFactory(), TokenFactory(key=rsa_key("rotated"))
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = pool_env(
        jwks.url,
        JWKS_KID_MISS_COOLDOWN_SECONDS="1",
        JWKS_MAX_AGE_SECONDS="10",  # stale during the test: refreshes are tried and fail
    )
    with jwks.running(), ServiceProcess(env, tmp_path) as server:
        assert call_add(server.url, old.token()).status_code == 200
        jwks.stop()

        for _ in range(10):  # new tokens under the cached key keep working
            assert call_add(server.url, old.token()).status_code == 200
        early = call_add(server.url, new.token())  # a kid we cannot look up yet: retry later
        assert early.status_code == 503
        assert early.headers["retry-after"]

        jwks.document = jwks_of(rsa_key(), rsa_key("rotated"))
        jwks.start()
        time.sleep(1.1)  # the kid-miss window the early call opened
        response = call_add(server.url, new.token())
        assert response.status_code == 200, response.text
        assert call_add(server.url, old.token()).status_code == 200
