"""The sliding window counter's arithmetic, on a clock the tests move (the in-process store; the
Redis script is held to the same results in tests/integration/test_ratelimit_redis.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cache.windows import Limit, MemoryWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hits(windows: MemoryWindows, n: int, limits: tuple[Limit, ...], key: str = "k") -> int:
    return sum(windows.hit(key, limits)[0] for _ in range(n))


def test_a_window_admits_exactly_its_amount() -> None:
    windows = MemoryWindows(clock=Clock())
    assert hits(windows, 15, (Limit(10, 60),)) == 10


def test_the_previous_window_counts_by_its_overlap() -> None:
    clock = Clock()
    windows = MemoryWindows(clock=clock)
    assert hits(windows, 10, (Limit(10, 60),)) == 10
    clock.now += 60 + 30  # half-way through the next window: half of the 10 still count
    assert hits(windows, 10, (Limit(10, 60),)) == 5


def test_after_two_idle_windows_the_whole_amount_is_back() -> None:
    clock = Clock()
    windows = MemoryWindows(clock=clock)
    hits(windows, 10, (Limit(10, 60),))
    clock.now += 120
    assert hits(windows, 15, (Limit(10, 60),)) == 10


def test_a_burst_at_a_window_boundary_is_not_doubled() -> None:
    clock = Clock()
    windows = MemoryWindows(clock=clock)
    limit = (Limit(100, 60),)
    hits(windows, 1, limit)
    clock.now += 59.5
    hits(windows, 99, limit)
    clock.now += 1
    assert hits(windows, 100, limit) <= 2  # a fixed window would admit 100 more here


def test_several_limits_are_spent_all_or_nothing() -> None:
    clock = Clock()
    windows = MemoryWindows(clock=clock)
    limits = (Limit(2, 1), Limit(3, 60))
    assert hits(windows, 5, limits) == 2  # the per-second limit refuses three
    clock.now += 2
    allowed, usages = windows.hit("k", limits)
    assert allowed
    assert [u.current for u in usages] == [1, 3]  # the refusals spent nothing of the minute
    assert not windows.hit("k", limits)[0]


def test_a_cost_larger_than_what_is_left_is_refused_and_spends_nothing() -> None:
    windows = MemoryWindows(clock=Clock())
    limit = (Limit(5, 60),)
    assert windows.hit("k", limit, cost=4)[0]
    assert not windows.hit("k", limit, cost=2)[0]
    assert windows.hit("k", limit, cost=1)[0]


def test_keys_are_counted_apart() -> None:
    windows = MemoryWindows(clock=Clock())
    assert hits(windows, 3, (Limit(2, 60),), "a") == 2
    assert hits(windows, 3, (Limit(2, 60),), "b") == 2


def test_the_store_forgets_idle_keys_then_the_oldest_past_its_bound() -> None:
    clock = Clock()
    windows = MemoryWindows(max_keys=100, clock=clock)
    for i in range(100):
        windows.hit(f"idle{i}", (Limit(1, 1),))
    clock.now += 5
    for i in range(1000):
        windows.hit(f"busy{i}", (Limit(1, 60),))
    assert len(windows) <= 100


@given(
    amount=st.integers(min_value=1, max_value=20),
    window=st.integers(min_value=1, max_value=120),
    cost=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=60),
)
def test_retry_after_is_neither_early_nor_late(
    amount: int, window: int, cost: int, gaps: list[float]
) -> None:
    """When a hit is refused, the same hit is admitted as soon as its wait is over, and not a
    moment before (given nothing else is spent meanwhile)."""
    clock = Clock()
    windows = MemoryWindows(clock=clock)
    limit = (Limit(amount, window),)
    for gap in gaps:
        clock.now += gap
        windows.hit("k", limit)
    allowed, (usage,) = windows.hit("k", limit, cost)
    if allowed or cost > amount:
        return
    wait = usage.wait(cost)
    start = clock.now
    if wait > 1e-3:
        clock.now = start + wait - 1e-3
        refused, _ = windows.hit("k", limit, cost)
        assert not refused
    clock.now = start + wait + 1e-6
    admitted, _ = windows.hit("k", limit, cost)
    assert admitted
