"""Redis killed (SIGKILL) in the middle of a load run over two replicas, then restarted on the
same port.

The documented policy (docs/redis.md and docs/rate-limits.md, "When Redis fails"): with
RATE_LIMIT_FAILURE_MODE=open, valid tokens keep working on local verification and each replica
counts rate limits in its own memory, every Redis call is bounded by its timeout, and the
replicas find Redis again on their own: revocations, the shared rate-limit budget and /readyz
all come back without a restart.

One outage is run for the module (`outage`); each test reads one behaviour off it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.faults.replicas import (
    SECRET,
    readiness,
    running_replicas,
    shared_env,
    wait_for_readiness,
    wait_until,
)
from tests.support.load import BackgroundLoad, Call, LoadReport, add_call
from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, RedisServer, ServiceProcess, cli
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

REDIS_TIMEOUT = 0.5
LIMITER_TIMEOUT = 0.25
# A request makes at most an L2 read and an L2 write through the shared gate and one rate-limit
# check; 2 s on top for a 2-core machine shared with benchmarks ("nothing hangs", not speed).
BUDGET = 2 * REDIS_TIMEOUT + LIMITER_TIMEOUT + 2.0
RL_PREFIX = "kill:v1:rl:"
POLICY = "ratelimit-policy"


@dataclass
class Outage:
    report: LoadReport
    killed: float  # time.monotonic() of the SIGKILL
    degraded: list[str]  # each replica's /readyz status once Redis was gone
    restarted: float
    recovered: float  # every replica's /readyz said "ok" again
    replicas: list[ServiceProcess]
    redis: RedisServer
    env: dict[str, str]
    cwd: Path
    revoked: str  # a token revoked before Redis was killed


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    cwd = tmp_path_factory.mktemp("redis-killed")
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    with jwks.running(), RedisServer(cwd) as redis_server:
        env = pool_env(
            jwks.url,
            REDIS_URL=redis_server.url,
            REDIS_KEY_PREFIX="kill",
            TOKEN_CACHE_SECRET=SECRET,
            TOKEN_CACHE_L2="true",  # every first sight of a token reads and writes Redis
            REDIS_TIMEOUT_SECONDS=str(REDIS_TIMEOUT),
            REDIS_BREAKER_COOLOFF_SECONDS="1",
            RATE_LIMIT="100000/minute",  # on Redis, never reached
            RATE_LIMIT_FALLBACK="50000/minute",  # names the policy "fallback" while Redis is out
            RATE_LIMIT_KEY_PREFIX=RL_PREFIX,
            RATE_LIMIT_REDIS_TIMEOUT_SECONDS=str(LIMITER_TIMEOUT),
            RATE_LIMIT_REDIS_COOLDOWN_SECONDS="1",
            IP_RATE_LIMIT="off",  # the whole load comes from one address
        )
        factory = TokenFactory()
        tokens = [factory.token(sub=f"load-{n % 20}") for n in range(300)]
        with running_replicas(env, cwd, 2) as replicas:
            for replica in replicas:
                assert readiness(replica) == "ok"
            revoked = revoke_everywhere(replicas, env, cwd, reason="before the kill")

            def plan(n: int) -> Call:
                return add_call(replicas[n % 2].url, tokens[n % len(tokens)])

            load = BackgroundLoad(plan, concurrency=8, duration=90, record_headers=[POLICY])
            with load:
                time.sleep(1.5)
                killed = time.monotonic()
                redis_server.kill()
                time.sleep(1.0)
                degraded = [readiness(replica) for replica in replicas]
                redis_server.start()  # same port, empty: the replicas must find it again
                restarted = time.monotonic()
                for replica in replicas:
                    wait_for_readiness(replica, "ok", 20)
                recovered = time.monotonic()
                time.sleep(1.0)
                report = load.report()
            yield Outage(
                report,
                killed,
                degraded,
                restarted,
                recovered,
                replicas,
                redis_server,
                env,
                cwd,
                revoked,
            )


def revoke_everywhere(
    replicas: list[ServiceProcess], env: dict[str, str], cwd: Path, reason: str
) -> str:
    """A token every replica accepted, revoked, and refused by every replica: the token."""
    jti = f"jti-{uuid.uuid4()}"
    token = TokenFactory().token(jti=jti)
    for replica in replicas:
        assert call_add(replica.url, token).status_code == 200
    revoked = cli("revoke", "--jti", jti, "--reason", reason, env=shared_env(env), cwd=cwd)
    assert revoked.returncode == 0, revoked.stderr

    def refused_everywhere() -> bool:
        answers: list[httpx.Response] = [call_add(r.url, token) for r in replicas]
        return all(a.status_code == 401 and a.json()["reason"] == "revoked" for a in answers)

    wait_until(refused_everywhere, 5, "the revocation reached every replica")
    return token


def test_no_valid_call_fails_while_redis_is_killed_and_restarted(outage: Outage) -> None:
    report = outage.report
    assert report.sent_between(outage.killed + 0.5, outage.restarted), "no load during the outage"
    assert not report.unexpected(), report.summary()


def test_no_call_waits_past_the_redis_timeout_budget(outage: Outage) -> None:
    assert outage.report.slowest() < BUDGET, outage.report.summary()


def test_rate_limits_fail_open_per_replica_then_count_on_redis_again(outage: Outage) -> None:
    during = outage.report.sent_between(outage.killed + 0.5, outage.restarted)
    assert any('"fallback"' in o.headers.get(POLICY, "") for o in during)
    after = outage.report.sent_between(outage.recovered + 0.5, outage.report.ended)
    assert after
    assert all('"default"' in o.headers[POLICY] for o in after)


def test_readiness_says_degraded_while_redis_is_out_and_ok_once_it_is_back(
    outage: Outage,
) -> None:
    assert outage.degraded == ["degraded", "degraded"]
    assert [readiness(replica) for replica in outage.replicas] == ["ok", "ok"]


def test_one_subject_draws_from_one_budget_kept_in_the_restarted_redis(outage: Outage) -> None:
    subject = f"after-{uuid.uuid4().hex[:8]}"
    token = TokenFactory().token(sub=subject)
    remaining = []
    for n in range(4):
        response = call_add(outage.replicas[n % 2].url, token)
        assert response.status_code == 200
        assert '"default"' in response.headers[POLICY]
        remaining.append(int(response.headers["ratelimit-remaining"]))
    assert remaining == [remaining[0] - n for n in range(4)], remaining
    direct = redis.Redis(port=outage.redis.port)
    try:
        assert int(direct.get(f"{RL_PREFIX}{{s:{subject}}}:60") or 0) == 4
    finally:
        direct.close()


def test_a_revocation_after_the_restart_reaches_every_replica(outage: Outage) -> None:
    revoke_everywhere(outage.replicas, outage.env, outage.cwd, reason="after the restart")


def test_a_token_revoked_before_redis_lost_its_data_stays_refused(outage: Outage) -> None:
    answers = [call_add(replica.url, outage.revoked) for replica in outage.replicas]
    assert [(a.status_code, a.json()["reason"]) for a in answers] == [(401, "revoked")] * 2


def test_the_revocation_audit_survives_redis_losing_its_data(outage: Outage) -> None:
    listed = cli("revoke", "--list", env=shared_env(outage.env), cwd=outage.cwd)
    assert listed.returncode == 0, listed.stderr
    assert '"reason": "before the kill"' in listed.stdout
