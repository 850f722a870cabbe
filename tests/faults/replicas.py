"""What the fault tests share: a fleet of `mcp-service serve` processes, their readiness, their
memory, and a patient wait."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.pool import pool_env
from tests.support.processes import ServiceProcess

SECRET = "fault-tests-shared-secret-" + "x" * 16
SHARED_SETTINGS = ("REDIS_URL", "REDIS_KEY_PREFIX", "TOKEN_CACHE_SECRET")


def fleet_env(jwks_url: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """Settings for a fleet sharing `redis_url` under `prefix` (JWKS, tokens, revocations and
    rate-limit counters alike), its shared entries sealed with SECRET."""
    return pool_env(
        jwks_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=prefix,
        RATE_LIMIT_KEY_PREFIX=f"{prefix}:rl:",
        TOKEN_CACHE_SECRET=SECRET,
        **extra,
    )


@contextlib.contextmanager
def running_replicas(
    env: Mapping[str, str], cwd: Path, size: int
) -> Iterator[list[ServiceProcess]]:
    """SIZE replicas launched together, each stopped by its PID at the end."""
    replicas = [ServiceProcess(env, cwd) for _ in range(size)]
    try:
        for replica in replicas:
            replica.launch()
        for replica in replicas:
            replica.wait_ready()
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {result!r})")
        time.sleep(interval)


def eventually(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> bool:
    """Whether `check` returns something truthy within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def readiness(replica: ServiceProcess) -> str:
    """/readyz's overall status ("ok", "degraded", "unavailable"), or "no answer"."""
    try:
        response = httpx.get(f"{replica.url}/readyz", timeout=5)
    except httpx.TransportError:
        return "no answer"
    return str(response.json()["status"])


def wait_for_readiness(replica: ServiceProcess, status: str, timeout: float = 20) -> None:
    wait_until(lambda: readiness(replica) == status, timeout, f"{replica.url}/readyz {status}")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux: /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def shared_env(env: Mapping[str, str]) -> dict[str, str]:
    """The settings `mcp-service revoke` needs to reach the fleet's Redis."""
    return {name: env[name] for name in SHARED_SETTINGS}


def delete_keys(url: str, pattern: str) -> None:
    """Remove this test's keys (never FLUSHALL: the Redis on 6379 is shared)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def metric(replica: ServiceProcess, name: str, **labels: str) -> float:
    """The sum of a replica's samples called NAME whose labels include LABELS (its /metrics)."""
    text = httpx.get(f"{replica.url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
