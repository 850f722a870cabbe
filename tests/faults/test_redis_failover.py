"""A failover as ElastiCache does one, on loopback: a primary and its replica started by the
module, the replica promoted and the primary demoted (`REPLICAOF`), and the endpoint the fleet
knows (a proxy, as the primary endpoint's DNS name) moved to the new primary. Connections still
open to the demoted node get `READONLY`; every path must drop them and reconnect, and readiness
must call a Redis that answers PING but refuses writes degraded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from cache.redis import SharedRedis, create_redis
from tests.faults.replicas import readiness, running_replicas, wait_for_readiness
from tests.support.load import BackgroundLoad, Call, LoadReport, add_call
from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, RedisServer, ServiceProcess
from tests.support.proxy import LatencyProxy
from tests.support.redistopologies import fail_over, primary_and_replica
from tests.support.sharedfleet import FLEET_SIZE, seconds_until_revoked_everywhere
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

pytestmark = pytest.mark.redis

SECRET = "failover-test-secret-" + "x" * 20
POLICY = "ratelimit-policy"
RL_PREFIX = "fo:v1:rl:"


@dataclass
class Failover:
    report: LoadReport
    failed_over: float
    recovered: float
    replicas: list[ServiceProcess]
    promoted: RedisServer


@pytest.fixture(scope="module")
def failover(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Failover]:
    cwd = tmp_path_factory.mktemp("failover")
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    with jwks.running(), primary_and_replica(cwd) as (primary, replica):
        endpoint = LatencyProxy(primary.port).start()
        env = pool_env(
            jwks.url,
            REDIS_URL=f"redis://127.0.0.1:{endpoint.port}/0",
            REDIS_KEY_PREFIX="fo",
            TOKEN_CACHE_SECRET=SECRET,
            TOKEN_CACHE_L2="true",  # every first sight of a token writes to Redis
            REDIS_BREAKER_COOLOFF_SECONDS="1",
            RATE_LIMIT="100000/minute",
            RATE_LIMIT_FALLBACK="50000/minute",  # names the policy "fallback" meanwhile
            RATE_LIMIT_REDIS_COOLDOWN_SECONDS="1",
            IP_RATE_LIMIT="off",
        )
        factory = TokenFactory()
        tokens = [factory.token(sub=f"fo-{n % 20}") for n in range(400)]
        try:
            with running_replicas(env, cwd, FLEET_SIZE) as replicas:
                for server in replicas:
                    wait_for_readiness(server, "ok")

                def plan(n: int) -> Call:
                    return add_call(replicas[n % len(replicas)].url, tokens[n % len(tokens)])

                load = BackgroundLoad(plan, concurrency=8, duration=60, record_headers=[POLICY])
                with load:
                    time.sleep(1.5)
                    failed_over = time.monotonic()
                    fail_over(primary, replica)
                    endpoint.target = ("127.0.0.1", replica.port)
                    for server in replicas:
                        wait_for_readiness(server, "ok", 20)
                    recovered = time.monotonic()
                    time.sleep(1.5)
                    report = load.report()
                yield Failover(report, failed_over, recovered, replicas, replica)
        finally:
            endpoint.stop()


def test_no_valid_call_fails_while_the_primary_is_demoted(failover: Failover) -> None:
    assert failover.report.sent_between(failover.failed_over, failover.recovered)
    assert not failover.report.unexpected(), failover.report.summary()


def test_after_the_failover_writes_land_on_the_new_primary(failover: Failover) -> None:
    subject = f"after-{uuid.uuid4().hex[:8]}"
    token = TokenFactory().token(sub=subject)
    for n in range(4):
        response = call_add(failover.replicas[n % len(failover.replicas)].url, token)
        assert response.status_code == 200
        assert '"default"' in response.headers[POLICY]
    client = redis.Redis(port=failover.promoted.port)
    try:
        assert client.get(f"{RL_PREFIX}{{s:{subject}}}:60") == b"4"
    finally:
        client.close()


def test_a_revocation_after_the_failover_reaches_every_replica(
    failover: Failover, tmp_path: Path
) -> None:
    assert seconds_until_revoked_everywhere(failover.replicas, tmp_path) < 1.0


def test_readiness_is_ok_on_every_replica_after_the_failover(failover: Failover) -> None:
    assert {readiness(server) for server in failover.replicas} == {"ok"}


async def test_a_redis_that_answers_ping_but_refuses_writes_is_degraded(tmp_path: Path) -> None:
    with primary_and_replica(tmp_path) as (primary, replica):
        gate = SharedRedis(
            create_redis(primary.url, socket_timeout=1, connect_timeout=1),
            prefix=f"ro-{uuid.uuid4().hex[:6]}",
        )
        try:
            before = await gate.readiness()
            fail_over(primary, replica)  # the node the gate talks to is a replica now
            after = await gate.readiness()
            assert await gate.client.ping()  # type: ignore[union-attr]
        finally:
            await gate.close()
    assert before.state.value == "ok"
    assert after.state.value == "degraded"
    assert "refuses writes" in after.detail
