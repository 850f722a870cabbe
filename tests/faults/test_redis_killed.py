"""Redis killed (SIGKILL) in the middle of a load run over two replicas, then restarted on the
same port.

The documented policy (README, "When Redis fails" and "Rate limits: When Redis fails"): with
RATE_LIMIT_FAILURE_MODE=open, valid tokens keep working on local verification and each replica
counts rate limits in its own memory, every Redis call is bounded by its timeout, and the
replicas find Redis again on their own: revocations, the shared rate-limit budget and /readyz
all come back without a restart.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import redis

from tests.faults.replicas import (
    SECRET,
    readiness,
    running_replicas,
    shared_env,
    wait_for_readiness,
    wait_until,
)
from tests.support.load import BackgroundLoad, Call, add_call
from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, RedisServer, ServiceProcess, cli
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

REDIS_TIMEOUT = 0.5
LIMITER_TIMEOUT = 0.25
# A request makes at most an L2 read and an L2 write through the shared gate and one rate-limit
# check; 2 s on top for a 2-core machine shared with benchmarks ("nothing hangs", not speed).
BUDGET = 2 * REDIS_TIMEOUT + LIMITER_TIMEOUT + 2.0
RL_PREFIX = "kill:v1:rl:"


def test_valid_calls_survive_redis_killed_mid_load_and_sharing_resumes(tmp_path: Path) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    with jwks.running(), RedisServer(tmp_path) as redis_server:
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
        with running_replicas(env, tmp_path, 2) as replicas:
            for replica in replicas:
                assert readiness(replica) == "ok"

            def plan(n: int) -> Call:
                return add_call(replicas[n % 2].url, tokens[n % len(tokens)])

            load = BackgroundLoad(
                plan, concurrency=8, duration=90, record_headers=["ratelimit-policy"]
            ).start()
            try:
                time.sleep(1.5)
                killed = time.monotonic()
                redis_server.kill()
                for replica in replicas:
                    wait_for_readiness(replica, "degraded", 10)
                time.sleep(1.0)
                redis_server.start()  # same port, empty: the replicas must find it again
                restarted = time.monotonic()
                for replica in replicas:
                    wait_for_readiness(replica, "ok", 20)
                recovered = time.monotonic()
                time.sleep(1.0)
            finally:
                report = load.report()

            valid = report.of("valid")
            assert not report.unexpected(), report.summary()
            assert report.slowest() < BUDGET, report.summary()
            outage = report.sent_between(killed + 0.5, restarted)
            assert outage, "no load ran while Redis was down"
            # Fail-open, as documented: counted per replica, under the fallback policy.
            assert any('"fallback"' in o.headers.get("ratelimit-policy", "") for o in outage)
            after = report.sent_between(recovered + 0.5, report.ended)
            assert after
            assert all('"default"' in o.headers["ratelimit-policy"] for o in after)
            assert len(valid) == len(report.outcomes)

            assert_the_shared_budget_counts_on_redis_again(replicas, factory, redis_server.port)
            assert_a_revocation_reaches_every_replica(replicas, factory, env, tmp_path)


def assert_the_shared_budget_counts_on_redis_again(
    replicas: list[ServiceProcess], factory: TokenFactory, port: int
) -> None:
    """One subject's calls on either replica draw from one budget, kept in the new Redis."""
    subject = f"after-{uuid.uuid4().hex[:8]}"
    token = factory.token(sub=subject)
    remaining = []
    for n in range(4):
        response = call_add(replicas[n % 2].url, token)
        assert response.status_code == 200
        assert '"default"' in response.headers["ratelimit-policy"]
        remaining.append(int(response.headers["ratelimit-remaining"]))
    assert remaining == [remaining[0] - n for n in range(4)], remaining
    direct = redis.Redis(port=port)
    try:
        assert int(direct.get(f"{RL_PREFIX}{{s:{subject}}}:60") or 0) == 4
    finally:
        direct.close()


def assert_a_revocation_reaches_every_replica(
    replicas: list[ServiceProcess], factory: TokenFactory, env: dict[str, str], cwd: Path
) -> None:
    jti = f"jti-{uuid.uuid4()}"
    token = factory.token(jti=jti)
    for replica in replicas:
        assert call_add(replica.url, token).status_code == 200
    revoked = cli("revoke", "--jti", jti, "--reason", "fault test", env=shared_env(env), cwd=cwd)
    assert revoked.returncode == 0, revoked.stderr

    def refused_everywhere() -> bool:
        answers: list[httpx.Response] = [call_add(r.url, token) for r in replicas]
        return all(a.status_code == 401 and a.json()["reason"] == "revoked" for a in answers)

    wait_until(refused_everywhere, 5, "the revocation reached every replica")
