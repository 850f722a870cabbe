"""Soak: a replica serves many distinct subjects and far more distinct tokens than its token
cache holds, for SOAK_SECONDS (default 10; the full soak is SOAK_SECONDS=60 or more),
with no error, and its memory stays bounded by its caches.

Every request carries a token never seen before (a fresh jti), so each one is verified, cached
in L1 and, the cache being full, evicts another: TOKEN_CACHE_MAX_ENTRIES is set small, and the
run sends many times that many tokens. Subjects cycle through a fixed set, so the per-subject
state (rate-limit counters, packed Redis commands) is complete after the first round. After
that warm-up every bounded structure is full, and the resident set may only wander by the
allocator's slack: growth beyond GROWTH_BOUND is a leak.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.faults.replicas import fleet_env, metric, rss_bytes, running_replicas
from tests.support.load import BackgroundLoad, Call, add_call
from tests.support.pool import JWKS_PATH
from tests.support.processes import JwksServer
from tests.support.tokens import TokenFactory, jwks_of, rsa_key

pytestmark = pytest.mark.redis

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "10"))
CACHE_ENTRIES = 200
SUBJECTS = 500
WARM_UP = 0.3  # share of the run (at least 3 s) after which every cache is full
# After the warm-up the caches are full: what they hold is replaced, not added to. The bound is
# one whole token cache more (an L1 entry cost ~4.7 KiB of RSS here: with the cache unbounded,
# RSS grew 12.6 MiB over 2,662 tokens; an identity has since also held its token's bytes, ~1 KiB
# more) plus 2 MiB of allocator slack, ~3 MiB in all. Bounded, the growth measured 0.3-0.4 MiB,
# over 10 s and over 60 s alike; a cache that kept every token passes the bound after ~600
# tokens, well within the short run.
ENTRY_BYTES = 6 * 1024
GROWTH_BOUND = CACHE_ENTRIES * ENTRY_BYTES + 2 * 1024 * 1024


def test_memory_stays_bounded_by_the_caches_through_a_soak_without_errors(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    jwks = JwksServer(jwks_of(rsa_key()), JWKS_PATH)
    env = fleet_env(
        jwks.url,
        redis_url,
        redis_prefix,
        TOKEN_CACHE_MAX_ENTRIES=str(CACHE_ENTRIES),
        RATE_LIMIT="6000/minute",  # far above what one subject gets here: nothing is refused
        IP_RATE_LIMIT="off",  # the whole load comes from one address
    )
    factory = TokenFactory()
    with jwks.running(), running_replicas(env, tmp_path, 1) as (replica,):
        assert replica.process is not None
        pid = replica.process.pid

        def plan(n: int) -> Call:
            return add_call(replica.url, factory.token(sub=f"soak-{n % SUBJECTS}"))

        samples: list[tuple[float, int]] = []  # (seconds into the run, RSS)
        load = BackgroundLoad(plan, concurrency=8, duration=SOAK_SECONDS).start()
        started = time.monotonic()
        while load.running:
            time.sleep(0.5)
            samples.append((time.monotonic() - started, rss_bytes(pid)))
        report = load.report(stop=False, timeout=SOAK_SECONDS + 60)
        verified = metric(replica, "mcp_token_cache_lookups_total", tier="miss")

    assert not report.unexpected(), report.summary()
    assert len(report.outcomes) > 3 * CACHE_ENTRIES, report.summary()  # the cache turned over
    assert verified >= len(report.outcomes)  # every token was new: verified, then cached
    warm = max(3.0, WARM_UP * SOAK_SECONDS)
    after = [rss for at, rss in samples if at >= warm]
    assert len(after) >= 4, samples
    baseline = after[0]
    growth = max(after) - baseline
    assert growth < GROWTH_BOUND, (
        f"RSS grew by {growth / 2**20:.1f} MiB after warm-up (from {baseline / 2**20:.1f} MiB), "
        f"over {len(report.outcomes)} requests; samples (s, MiB): "
        + ", ".join(f"{at:.0f}:{rss / 2**20:.1f}" for at, rss in samples)
    )
