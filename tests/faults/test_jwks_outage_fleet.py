"""The JWKS endpoint down past the keys' max age under load, a replica started in the middle of
the outage, then the endpoint back with a rotated key set -- across a fleet sharing Redis.

tests/integration/test_jwks_rotation.py covers one replica without Redis, with keys that never
go stale during the outage; test_jwks_outage.py a replica that never had keys. Left out, and
covered here: keys past JWKS_MAX_AGE_SECONDS keep serving while their refreshes fail (stale while
the IdP is down), a replica that starts during the outage serves from the fleet's shared copy
(docs/redis.md, "When Cognito fails"), and after the rotation new-kid tokens work on every replica,
the one started during the outage included, while the load never sees a failure.

One outage is run for the module (`outage`); each test reads one behaviour off it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pytest

from tests.faults.replicas import (
    delete_keys,
    eventually,
    fleet_env,
    metric,
    readiness,
    running_replicas,
)
from tests.support.load import BackgroundLoad, Call, LoadReport, add_call
from tests.support.pool import JWKS_PATH, call_add
from tests.support.processes import JwksServer, ServiceProcess
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

pytestmark = pytest.mark.redis

MAX_AGE = 10.0  # the smallest JWKS_MAX_AGE_SECONDS allowed


@dataclass
class Outage:
    report: LoadReport
    stale_from: float  # time.monotonic() when the keys passed their max age
    failed_refreshes: float  # JWKS fetch errors of the fleet by then
    late_readiness: str  # /readyz of the replica started during the outage
    late_status: int  # its answer to a valid call, the IdP still down
    late_fetches: float  # its successful fetches from the IdP by then
    rotated: list[str]  # the replicas where a new-kid token worked within 5 s of the rotation
    replicas: list[str]


def accepts(replica: ServiceProcess, signer: TokenFactory) -> bool:
    return call_add(replica.url, signer.token()).status_code == 200


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Outage]:
    cwd = tmp_path_factory.mktemp("jwks-outage")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    old, new = TokenFactory(), TokenFactory(key=rsa_key("rotated"))
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = fleet_env(
        jwks.url,
        redis_url,
        prefix,  # the JWKS is shared through Redis
        JWKS_MAX_AGE_SECONDS=str(int(MAX_AGE)),
        JWKS_KID_MISS_COOLDOWN_SECONDS="1",
        JWKS_FAILURE_BACKOFF_SECONDS="1",
        RATE_LIMIT="100000/minute",
        IP_RATE_LIMIT="off",
    )
    try:
        with jwks.running(), running_replicas(env, cwd, 2) as replicas:
            for replica in replicas:
                assert call_add(replica.url, old.token()).status_code == 200
            loaded = time.monotonic()
            jwks.stop()

            targets = list(replicas)
            signers = [old]

            def plan(n: int) -> Call:  # a fresh token each time: each call is verified
                signer = signers[n % len(signers)]
                return add_call(targets[n % len(targets)].url, signer.token(sub=f"u-{n % 50}"))

            late = ServiceProcess(env, cwd)
            with BackgroundLoad(plan, concurrency=6, duration=90) as load:
                try:
                    time.sleep(max(0.0, loaded + MAX_AGE + 1.0 - time.monotonic()))
                    failed = sum(
                        metric(r, "mcp_jwks_fetches_total", result="error") for r in replicas
                    )
                    late.start()  # cold, the IdP down: only the fleet's shared copy can serve
                    late_readiness = readiness(late)
                    late_status = call_add(late.url, old.token()).status_code
                    late_fetches = metric(late, "mcp_jwks_fetches_total", result="ok")
                    targets.append(late)
                    time.sleep(1.0)

                    jwks.document = jwks_of(rsa_key(), rsa_key("rotated"))
                    jwks.start()
                    rotated = [r.url for r in targets if eventually(partial(accepts, r, new), 5)]
                    signers.append(new)
                    time.sleep(1.0)
                    report = load.report()
                finally:
                    late.stop()
            yield Outage(
                report,
                loaded + MAX_AGE,
                failed,
                late_readiness,
                late_status,
                late_fetches,
                rotated,
                [r.url for r in targets],
            )
    finally:
        delete_keys(redis_url, f"{prefix}:*")


def test_stale_keys_keep_serving_while_the_idp_is_down(outage: Outage) -> None:
    assert outage.failed_refreshes >= 1  # the keys went stale, and refreshing them failed
    assert outage.report.sent_between(outage.stale_from, outage.report.ended)
    assert not outage.report.unexpected(), outage.report.summary()


def test_a_replica_started_during_the_outage_serves_from_the_shared_copy(outage: Outage) -> None:
    assert outage.late_readiness == "ok"
    assert outage.late_status == 200
    assert outage.late_fetches == 0  # its keys came from Redis, not from the IdP


def test_after_the_rotation_new_kid_tokens_work_on_every_replica(outage: Outage) -> None:
    assert outage.rotated == outage.replicas
