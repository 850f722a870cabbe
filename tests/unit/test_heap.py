"""The start-up heap is frozen out of the collector's way, and nothing alive is lost."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from mcp_service.heap import YOUNG_THRESHOLD, freeze_startup_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's own objects go back to the collector
    gc.set_threshold(*threshold)


def test_everything_alive_at_start_up_is_frozen(unfrozen: None) -> None:
    kept = {"still": "here"}
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > 1000
    assert len(gc.get_objects(generation=2)) < frozen  # full collections skip the frozen ones
    assert kept == {"still": "here"}


def test_garbage_made_before_start_up_is_collected_first(unfrozen: None) -> None:
    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it, and a freeze would keep it
    gone = weakref.ref(a)
    del a, b
    freeze_startup_heap()
    assert gone() is None


def test_the_youngest_generation_waits_for_more_allocations(unfrozen: None) -> None:
    older = gc.get_threshold()[1:]
    freeze_startup_heap()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *older)
    assert YOUNG_THRESHOLD > 700
