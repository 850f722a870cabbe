"""Redis frozen (SIGSTOP) with requests in flight, then resumed: the requests that were waiting
are counted in process when the limiter gives up on them, and Redis runs their scripts when it
resumes, so each may be counted twice, but no more: the over-count is at most the number of
requests in flight at the stall. Requests that arrive after the limiter gave up never reach
Redis, and nothing is sent to Redis again."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.support.processes import RedisServer
from tests.support.service import make_service

pytestmark = pytest.mark.redis

BEFORE, IN_FLIGHT, DURING, AFTER = 5, 8, 10, 5


async def test_the_over_count_after_a_freeze_is_at_most_the_requests_in_flight(
    tmp_path: Path,
) -> None:
    subject = f"frozen-{uuid.uuid4().hex[:8]}"
    claims = {"sub": subject, "client_id": "c"}
    with RedisServer(tmp_path) as server:
        service = make_service(
            redis_url=server.url,
            rate_limit="100000/minute",
            rate_limit_redis_timeout_seconds=0.2,
            rate_limit_redis_cooldown_seconds=0.3,
        )
        limiter = service.limiter
        assert limiter is not None
        await limiter.start()
        try:
            before = [await limiter.check(claims) for _ in range(BEFORE)]
            server.pause()
            try:
                stalled = await asyncio.gather(*(limiter.check(claims) for _ in range(IN_FLIGHT)))
                during = [await limiter.check(claims) for _ in range(DURING)]
            finally:
                server.resume()
            deadline = time.monotonic() + 5
            while (await limiter.readiness()).state.value != "ok":
                assert time.monotonic() < deadline, "the limiter did not reconnect"
                await asyncio.sleep(0.05)
            after = [await limiter.check(claims) for _ in range(AFTER)]
        finally:
            await limiter.close()
        client = redis.Redis(port=server.port)
        counted = int(client.get(f"{service.settings.rate_limit_prefix}{{s:{subject}}}:60") or 0)
        client.close()
    assert {d.outcome for d in before + after} == {"allowed"}
    assert {d.outcome for d in stalled + during} == {"fallback_allowed"}
    over_count = counted - (BEFORE + AFTER)
    assert 0 <= over_count <= IN_FLIGHT
