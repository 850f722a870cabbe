"""The JWKS endpoint down past the keys' max age under load, a replica started in the middle of
the outage, then the endpoint back with a rotated key set -- across a fleet sharing Redis.

tests/integration/test_jwks_rotation.py covers one replica without Redis, with keys that never
go stale during the outage; test_jwks_outage.py a replica that never had keys. Left out, and
covered here: keys past JWKS_MAX_AGE_SECONDS keep serving while their refreshes fail (stale while
the IdP is down), a replica that starts during the outage serves from the fleet's shared copy
(README, "When Cognito fails"), and after the rotation new-kid tokens work on every replica,
the one started during the outage included, while the load never sees a failure.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest

from tests.faults.replicas import SECRET, metric, readiness, running_replicas, wait_until
from tests.support.load import BackgroundLoad, Call, add_call
from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, ServiceProcess
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

pytestmark = pytest.mark.redis

MAX_AGE = 10.0  # the smallest JWKS_MAX_AGE_SECONDS allowed


def accepts(replica: ServiceProcess, signer: TokenFactory) -> bool:
    return call_add(replica.url, signer.token()).status_code == 200


def test_stale_and_shared_keys_serve_through_an_idp_outage_and_a_rotation_lands_everywhere(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    old, new = TokenFactory(), TokenFactory(key=rsa_key("rotated"))
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = pool_env(
        jwks.url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=redis_prefix,
        RATE_LIMIT_KEY_PREFIX=f"{redis_prefix}:rl:",
        TOKEN_CACHE_SECRET=SECRET,  # the JWKS is shared through Redis
        JWKS_MAX_AGE_SECONDS=str(int(MAX_AGE)),
        JWKS_KID_MISS_COOLDOWN_SECONDS="1",
        JWKS_FAILURE_BACKOFF_SECONDS="1",
        RATE_LIMIT="100000/minute",
        IP_RATE_LIMIT="off",
    )
    with jwks.running(), running_replicas(env, tmp_path, 2) as replicas:
        for replica in replicas:
            assert call_add(replica.url, old.token()).status_code == 200
        loaded = time.monotonic()
        jwks.stop()

        targets = list(replicas)
        signers = [old]

        def plan(n: int) -> Call:  # a fresh token each time: each call is verified with a key
            signer = signers[n % len(signers)]
            return add_call(targets[n % len(targets)].url, signer.token(sub=f"user-{n % 50}"))

        late = ServiceProcess(env, tmp_path)
        load = BackgroundLoad(plan, concurrency=6, duration=90).start()
        try:
            time.sleep(max(0.0, loaded + MAX_AGE + 1.0 - time.monotonic()))
            for replica in replicas:  # the keys are stale now: refreshes were tried, and failed
                assert metric(replica, "mcp_jwks_fetches_total", result="error") >= 1
            late.start()  # cold, with the IdP down: only the fleet's shared copy can serve it
            assert readiness(late) == "ok"
            assert call_add(late.url, old.token()).status_code == 200
            assert metric(late, "mcp_jwks_fetches_total", result="ok") == 0  # none from the IdP
            targets.append(late)
            time.sleep(1.0)

            jwks.document = jwks_of(rsa_key(), rsa_key("rotated"))
            jwks.start()
            for replica in targets:
                wait_until(partial(accepts, replica, new), 5, f"a new-kid token on {replica.url}")
            signers.append(new)
            time.sleep(1.0)
        finally:
            report = load.report()
            late.stop()

    assert not report.unexpected(), report.summary()
    assert report.sent_between(loaded + MAX_AGE, report.ended)  # the load ran while stale
