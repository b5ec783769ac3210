"""`_ShinglePostings.lookup` counts what a plain multimap would, whichever part (the merged
array or the recent additions) holds a key's stories."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from timeline.domain.clustering import _ShinglePostings


def reference(stored: dict[int, list[int]], keys: set[int], limit: int) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for key in keys:
        sids = stored.get(key, [])
        if 0 < len(sids) <= limit:
            for sid in sids:
                counts[sid] += 1
    return dict(counts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lookup_counts_as_a_multimap_through_merges(seed: int) -> None:
    rng = random.Random(seed)
    postings = _ShinglePostings()
    stored: dict[int, list[int]] = defaultdict(list)
    keys = [rng.getrandbits(32) for _ in range(300)]
    both = 0  # look-ups of a key whose stories are in both parts
    for sid in range(3000):
        # Zipf-like: a few keys in many stories (over the limit), most in one or two.
        for key in {keys[min(int(rng.paretovariate(1.2)) - 1, 299)] for _ in range(5)}:
            postings.add(key, sid)
            stored[key].append(sid)
        if sid % 97 == 0:
            wanted = set(rng.sample(keys, 40)) | {rng.getrandbits(32)}  # and one unknown
            limit = rng.choice([1, 5, 50, 10_000])
            assert postings.lookup(wanted, limit) == reference(stored, wanted, limit)
            assert postings.lookup(list(wanted), limit) == reference(stored, wanted, limit)
            merged = set((postings._packed >> np.uint64(32)).tolist())
            both += len(wanted & merged & postings._recent.keys())
    assert both, "no key looked up was in both the merged array and the recent additions"
