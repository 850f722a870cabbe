"""A slow Redis (a latency proxy in front of a real one): requests stay within the timeout
budget, and the replica keeps serving."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import redis

from tests.support.pool import JWKS_PATH, call_add, pool_env
from tests.support.processes import JwksServer, RedisServer, ServiceProcess
from tests.support.proxy import LatencyProxy
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

TIMEOUT = 0.5


def call(url: str, token: str) -> tuple[int, float]:
    started = time.monotonic()
    response = call_add(url, token)
    return response.status_code, time.monotonic() - started


def test_requests_stay_within_the_redis_timeout_budget(tmp_path: Path) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    with jwks.running(), RedisServer(tmp_path) as redis_server:
        proxy = LatencyProxy(redis_server.port)
        with proxy.running():
            env = pool_env(
                jwks.url,
                REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0",
                REDIS_KEY_PREFIX=f"slow-{uuid.uuid4().hex[:8]}",
                TOKEN_CACHE_SECRET="slow-redis-secret-" + "x" * 20,
                TOKEN_CACHE_L2="true",  # every L1 miss reads and writes Redis
                REDIS_TIMEOUT_SECONDS=str(TIMEOUT),
                RATE_LIMIT="off",  # this test is about the shared caches' Redis calls
            )
            factory = TokenFactory()
            with ServiceProcess(env, tmp_path) as server:
                assert call(server.url, factory.token())[0] == 200

                proxy.delay = 0.05  # slower, but inside the budget: Redis is still used
                for _ in range(5):
                    status, took = call(server.url, factory.token())
                    assert status == 200
                    assert took < 2 * 0.05 * 2 + TIMEOUT

                proxy.delay = 3.0  # far beyond the budget
                times = []
                for _ in range(20):
                    status, took = call(server.url, factory.token())
                    assert status == 200
                    times.append(took)
                # each Redis call is cut at the timeout (a miss does a read and a write), and
                # once the breaker opens the calls skip Redis altogether
                assert max(times) < 2 * TIMEOUT + 0.75
                assert sorted(times)[len(times) // 2] < TIMEOUT

                proxy.delay = 0.0  # Redis recovers: the breaker closes on its own
                time.sleep(2.5)
                direct = redis.Redis(port=redis_server.port)
                pattern = f"{env['REDIS_KEY_PREFIX']}:v1:tok:*"
                before = len(list(direct.scan_iter(match=pattern)))
                for _ in range(3):
                    assert call(server.url, factory.token())[0] == 200
                assert len(list(direct.scan_iter(match=pattern))) >= before + 2
