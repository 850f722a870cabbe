"""/healthz and /readyz: which state answers what, and within a bounded time."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from observability.health import CheckResult, Readiness
from tests.observability.obs_support import pool_settings
from tests.support.processes import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def silent_jwks() -> Iterator[str]:
    """A JWKS URL whose server accepts the connection and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/.well-known/jwks.json"
    listener.close()


async def test_healthz_answers_ok(in_process: Callable[..., Any]) -> None:
    async with in_process() as svc:
        response = await svc.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ok_when_the_signing_keys_are_loaded(
    in_process: Callable[..., Any],
) -> None:
    async with in_process() as svc:
        response = await svc.client.get("/readyz")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["checks"]["jwks"]["status"] == "ok"
    assert "redis" not in body["checks"]  # no REDIS_URL: nothing to check


async def test_readyz_is_503_when_no_signing_keys_can_be_had(
    in_process: Callable[..., Any], unreachable_pool: dict[str, Any]
) -> None:
    async with in_process(**unreachable_pool) as svc:
        response = await svc.client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["jwks"]["status"] == "down"
    assert "no signing keys" in body["checks"]["jwks"]["detail"]


async def test_readyz_answers_within_its_timeout_when_the_jwks_endpoint_hangs(
    in_process: Callable[..., Any], silent_jwks: str
) -> None:
    async with in_process(**pool_settings(silent_jwks), readiness_timeout_seconds=0.5) as svc:
        started = time.monotonic()
        response = await svc.client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert "0.5 s" in response.json()["checks"]["jwks"]["detail"]
    assert elapsed < 3.0  # the 0.5 s budget plus a generous margin, never the 5 s fetch timeout


async def test_readyz_is_200_degraded_when_redis_is_unreachable(
    in_process: Callable[..., Any],
) -> None:
    async with in_process(redis_url=f"redis://127.0.0.1:{free_port()}/0") as svc:
        response = await svc.client.get("/readyz")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "degraded"
    assert body["checks"]["redis"]["critical"] is False
    assert body["checks"]["jwks"]["status"] == "ok"


async def test_readyz_with_redis_down_is_degraded_when_the_limiter_fails_open(
    in_process: Callable[..., Any],
) -> None:
    async with in_process(redis_url=f"redis://127.0.0.1:{free_port()}/0") as svc:
        response = await svc.client.get("/readyz")
    check = response.json()["checks"]["rate_limit"]
    assert response.status_code == 200
    assert (check["status"], check["critical"]) == ("degraded", False)


async def test_readyz_with_redis_down_is_503_when_the_limiter_fails_closed(
    in_process: Callable[..., Any],
) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    async with in_process(redis_url=unreachable, rate_limit_failure_mode="closed") as svc:
        response = await svc.client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["rate_limit"]["status"] == "down"
    assert body["checks"]["redis"]["status"] == "degraded"


@pytest.mark.redis
async def test_readyz_is_ok_with_a_reachable_redis_and_revocations_in_sync(
    in_process: Callable[..., Any], redis_url: str, redis_prefix: str
) -> None:
    async with in_process(redis_url=redis_url, redis_key_prefix=redis_prefix) as svc:
        listener = svc.service.revocations
        await asyncio.wait_for(listener.synced.wait(), 10)
        response = await svc.client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["revocations"]["status"] == "ok"


async def test_the_readiness_gauges_follow_the_last_evaluation(
    in_process: Callable[..., Any], unreachable_pool: dict[str, Any]
) -> None:
    async with in_process(**unreachable_pool) as svc:
        await svc.client.get("/readyz")
        unready = await svc.metrics_text()
    async with in_process() as svc:
        await svc.client.get("/readyz")
        ready = await svc.metrics_text()
    assert "\nmcp_ready 0.0" in unready
    assert 'mcp_dependency_up{dependency="jwks"} 0.0' in unready
    assert "\nmcp_ready 1.0" in ready
    assert 'mcp_dependency_up{dependency="jwks"} 1.0' in ready


# Readiness itself, with checks of the test's own. ---------------------------------------------


def fixed(result: CheckResult) -> Callable[[], Any]:
    async def check() -> CheckResult:
        return result

    return check


async def test_a_critical_check_down_makes_the_replica_unavailable() -> None:
    readiness = Readiness()
    readiness.add("keys", fixed(CheckResult.down("gone")), critical=True)
    readiness.add("cache", fixed(CheckResult.ok()), critical=False)
    report = await readiness.evaluate()
    assert report.status == "unavailable"
    assert report.http_status == 503


async def test_a_non_critical_check_down_leaves_the_replica_serving_degraded() -> None:
    readiness = Readiness()
    readiness.add("keys", fixed(CheckResult.ok()), critical=True)
    readiness.add("cache", fixed(CheckResult.down("gone")), critical=False)
    report = await readiness.evaluate()
    assert report.status == "degraded"
    assert report.http_status == 200


async def test_a_check_that_raises_counts_as_down_without_leaking_the_message() -> None:
    async def broken() -> CheckResult:
        raise ConnectionError("redis://:s3cret@host")

    readiness = Readiness()
    readiness.add("cache", broken, critical=True)
    report = await readiness.evaluate()
    assert report.status == "unavailable"
    assert "s3cret" not in str(report.body())


async def test_a_slow_check_is_cut_off_at_the_timeout() -> None:
    async def slow() -> CheckResult:
        await asyncio.sleep(30)
        return CheckResult.ok()

    readiness = Readiness(timeout=0.1)
    readiness.add("slow", slow, critical=False)
    started = time.monotonic()
    report = await readiness.evaluate()
    assert time.monotonic() - started < 2
    assert report.body()["checks"]["slow"]["status"] == "down"


async def test_each_evaluation_is_reported_to_the_hook() -> None:
    seen: list[tuple[bool, dict[str, bool]]] = []
    readiness = Readiness(on_report=lambda ready, checks: seen.append((ready, dict(checks))))
    readiness.add("keys", fixed(CheckResult.ok()), critical=True)
    readiness.add("cache", fixed(CheckResult.degraded("slow")), critical=False)
    await readiness.evaluate()
    assert seen == [(True, {"keys": True, "cache": False})]
