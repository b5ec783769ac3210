"""The poller's long-lived indexes and Python's cyclic garbage collector.

The clustering and storyline indexes hold millions of small objects (tens of thousands of
events' terms). Each full collection of the cyclic garbage collector walks all of them: about
0.4 s at 50,000 events, once a round or more (measured on the 1,000-feed bench farm, where it
was a tenth of a round's CPU). Those objects are not garbage, and the indexes free what they
drop by reference counting (they hold no cycles). So after each round's load the survivors are
frozen (``gc.freeze``): later collections skip them. Before freezing, the young generations are
collected (cheap: they hold one round's objects); garbage left in a cycle among older or frozen
objects would never be collected, so every `REFREEZE_ROUNDS` rounds everything is unfrozen and
collected once (a full collection, as often as one an hour or so instead of one a round).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from timeline.storage.bulk import paused_gc

log = logging.getLogger(__name__)

REFREEZE_ROUNDS = 96


class HeapKeeper:
    """Freezes what survives the start of a round; unfreezes and collects now and then."""

    def __init__(self, refreeze_rounds: int = REFREEZE_ROUNDS) -> None:
        self.refreeze_rounds = refreeze_rounds
        self.rounds = 0

    @contextmanager
    def settling(self) -> Iterator[None]:
        """Around a round's index loads: collect the young garbage made since the last call
        (or, every `refreeze_rounds` calls, all of it), load with the collector paused (a
        growing heap would otherwise be walked again and again), then freeze what is there."""
        began = time.perf_counter()
        self.rounds += 1
        full = self.rounds % self.refreeze_rounds == 0
        if full:
            gc.unfreeze()
        collected = gc.collect() if full else gc.collect(1)
        try:
            with paused_gc():
                yield
        finally:
            gc.freeze()
        log.debug(
            "round start: %.3f s (%s collection, %d objects collected, %d frozen)",
            time.perf_counter() - began,
            "full" if full else "young",
            collected,
            gc.get_freeze_count(),
        )
