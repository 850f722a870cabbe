"""A Redis slowed far past its timeouts (a latency proxy in front of a real one) under concurrent
load, with everything on Redis on the request path: the per-subject rate limit and the token L2.

tests/integration/test_slow_redis.py covers the shared caches' calls, one request at a time and
with the rate limit off. What it leaves out is the limiter's own connection (a pipelined line
with a watchdog, RATE_LIMIT_REDIS_TIMEOUT_SECONDS) and many requests waiting on a stalled Redis
at once: each must still end within the budget, be admitted (fail-open, counted per replica under
the fallback policy), and the shared budget must come back once Redis is fast again.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.faults.replicas import SECRET, running_replicas, wait_until
from tests.support.load import BackgroundLoad, Call, add_call
from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, RedisServer
from tests.support.proxy import LatencyProxy
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

REDIS_TIMEOUT = 0.5
LIMITER_TIMEOUT = 0.25
# An L2 read, an L2 write and a rate-limit check, each cut at its timeout, and 2 s of slack
# for a shared 2-core machine: a bound on hanging, not a speed.
BUDGET = 2 * REDIS_TIMEOUT + LIMITER_TIMEOUT + 2.0


def policy_of(replica_url: str, token: str) -> str:
    return str(call_add(replica_url, token).headers.get("ratelimit-policy", ""))


def test_a_stalled_redis_bounds_every_request_in_flight_and_the_shared_budget_returns(
    tmp_path: Path,
) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    with jwks.running(), RedisServer(tmp_path) as redis_server:
        proxy = LatencyProxy(redis_server.port)
        with proxy.running():
            env = pool_env(
                jwks.url,
                REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0",
                REDIS_KEY_PREFIX="stall",
                TOKEN_CACHE_SECRET=SECRET,
                TOKEN_CACHE_L2="true",
                REDIS_TIMEOUT_SECONDS=str(REDIS_TIMEOUT),
                REDIS_BREAKER_COOLOFF_SECONDS="1",
                RATE_LIMIT="100000/minute",
                RATE_LIMIT_FALLBACK="50000/minute",
                RATE_LIMIT_REDIS_TIMEOUT_SECONDS=str(LIMITER_TIMEOUT),
                RATE_LIMIT_REDIS_COOLDOWN_SECONDS="1",
                IP_RATE_LIMIT="off",
            )
            factory = TokenFactory()
            tokens = [factory.token(sub=f"user-{n % 10}") for n in range(300)]
            with running_replicas(env, tmp_path, 1) as (replica,):
                probe = factory.token(sub="probe")
                assert '"default"' in policy_of(replica.url, probe)

                def plan(n: int) -> Call:
                    return add_call(replica.url, tokens[n % len(tokens)])

                load = BackgroundLoad(
                    plan, concurrency=16, duration=60, record_headers=["ratelimit-policy"]
                ).start()
                try:
                    time.sleep(1.0)
                    stalled = time.monotonic()
                    proxy.delay = 3.0  # every reply now comes long after every timeout
                    time.sleep(3.0)
                    proxy.delay = 0.0
                    cleared = time.monotonic()
                    wait_until(
                        lambda: '"default"' in policy_of(replica.url, probe),
                        15,
                        "the shared budget is used again",
                    )
                    time.sleep(0.5)
                finally:
                    report = load.report()

    assert not report.unexpected(), report.summary()
    assert report.slowest() < BUDGET, report.summary()
    during = report.sent_between(stalled + 1.0, cleared)
    assert len(during) > 16, report.summary()  # not just the requests caught by the stall
    assert any('"fallback"' in o.headers.get("ratelimit-policy", "") for o in during)
