"""The heap keeper: what survives a round start is frozen, and nothing stays uncollectable."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from timeline.usecases.heap import HeapKeeper


class Node:
    """An object that can sit in a reference cycle (and be weakly referenced)."""

    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(b)


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()
    gc.collect()


def test_loads_run_with_the_collector_paused_and_survivors_are_frozen() -> None:
    keeper = HeapKeeper(refreeze_rounds=4)
    assert gc.isenabled()
    with keeper.settling():
        assert not gc.isenabled()
        kept = [Node() for _ in range(100)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(kept)
    # A frozen object is still freed by reference counting when dropped.
    ref = weakref.ref(kept[0])
    del kept
    assert ref() is None


def test_young_garbage_is_collected_at_the_next_round_start() -> None:
    keeper = HeapKeeper(refreeze_rounds=4)
    with keeper.settling():
        pass
    head, ref = _cycle()
    del head
    assert ref() is not None  # a cycle: reference counting alone does not free it
    with keeper.settling():
        pass
    assert ref() is None


def test_a_cycle_frozen_while_alive_is_collected_at_the_refreeze_round() -> None:
    keeper = HeapKeeper(refreeze_rounds=3)
    head, ref = _cycle()
    with keeper.settling():
        pass  # round 1: the live cycle is frozen
    del head
    with keeper.settling():
        pass  # round 2: a young collection does not see frozen objects
    assert ref() is not None
    with keeper.settling():
        pass  # round 3: everything unfrozen and collected
    assert ref() is None


def test_a_failed_load_still_enables_the_collector() -> None:
    keeper = HeapKeeper()
    with pytest.raises(RuntimeError), keeper.settling():
        raise RuntimeError("load failed")
    assert gc.isenabled()


def test_a_collector_disabled_by_the_caller_stays_disabled() -> None:
    keeper = HeapKeeper()
    gc.disable()
    with keeper.settling():
        pass
    assert not gc.isenabled()
