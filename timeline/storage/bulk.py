"""Bulk loads: the cyclic garbage collector paused while an index is read from the database.

A cold start builds hundreds of thousands of small containers (a storyline subject per event,
a clustering source per entry), none of them garbage, and the collector would traverse the
growing heap again and again as they are allocated: measured on the cold-start bench
(`python -m bench.coldstart --entries 200000`), a quarter of the load's CPU time. Reference
counting still frees everything as usual; only the search for cycles waits, and the previous
state is restored (a collection runs at the next allocations, as it would have).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic collector within the block (no-op if it is already paused)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
