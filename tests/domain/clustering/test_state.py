"""The event index saved as arrays and loaded back (what a restart reads instead of computing
every source's features again): the same index, deciding every later story as the one that
was saved would. Hashes of shingles and identities are the same in every process."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from tests.domain.clustering.labelled import load_pairs
from tests.domain.clustering.test_index import _stories
from timeline.domain.clustering import EventIndex, _identities, _shingles, _words

T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
WINDOW = timedelta(hours=72)


def same_event_index(a: EventIndex, b: EventIndex, *, exact: bool = True) -> None:
    """Assert that two indexes hold the same sources, postings, counts and cached IDFs
    (`exact`: also the same days computed so far)."""
    assert a.window == b.window
    assert len(a._sources) == len(b._sources)
    for x, y in zip(a._sources, b._sources, strict=True):
        if exact:
            assert x == y
        else:
            # The days a text names are computed on demand, and then its text is dropped: a
            # source a look-up did that for is the same source as one it did not.
            assert replace(x, text="", _days=None) == replace(y, text="", _days=None)
            assert x.days() == y.days()
        assert x.published.tzinfo is UTC and y.published.tzinfo is UTC
    assert a._by_identity == b._by_identity
    assert list(a._token_postings) == list(b._token_postings)
    assert a._token_postings == b._token_postings
    assert np.array_equal(a._shingle_postings._packed, b._shingle_postings._packed)
    assert a._shingle_postings._recent == b._shingle_postings._recent
    assert a._shingle_postings._pending == b._shingle_postings._pending
    assert a._df == b._df
    if exact:
        assert a._idf_cache == b._idf_cache
    else:
        # A memo of `_idf_n` and `_df` (dropped when either changes): which terms it holds
        # depends on the look-ups made since, not what it says of them.
        both = a._idf_cache.keys() & b._idf_cache.keys()
        assert {t: a._idf_cache[t] for t in both} == {t: b._idf_cache[t] for t in both}
    assert a._idf_n == b._idf_n
    assert a._earliest == b._earliest
    assert a._oldest == b._oldest


def reloaded(index: EventIndex) -> EventIndex:
    """`index` through a snapshot file's format and back (np.savez, no pickles)."""
    out = io.BytesIO()
    np.savez(out, allow_pickle=False, **index.state())
    out.seek(0)
    with np.load(out, allow_pickle=False) as data:
        return EventIndex.from_state(index.window, {k: data[k] for k in data.files})


def story_of(side: dict[str, Any], shift: timedelta) -> dict[str, Any]:
    return {
        "title": side["title"],
        "summary": side.get("summary", ""),
        "published": side["published"] + shift,
        "link": side.get("link"),
        "keys": side.get("keys", ()),
    }


def busy_index(rng: random.Random) -> tuple[EventIndex, list[dict[str, Any]]]:
    """An index built as ingest builds one (each story looked up, then added under the event
    it matched or a new one), with made-up stories and near copies, the labelled pairs'
    stories (links, guid keys, names, figures, days named in the text), a source seen later
    than it was published, and a prune; and the stories still to come."""
    pairs = load_pairs()
    shift = T0 - min(p["a"]["published"] for p in pairs)
    made_up = _stories(rng, 700, T0, timedelta(hours=60), "m")
    stories = [story_of(p["a"], shift) for p in pairs] + made_up
    rng.shuffle(stories)
    later = [story_of(p["b"], shift) for p in pairs] + _stories(
        rng, 200, T0 + timedelta(hours=40), timedelta(hours=30), "l"
    )
    rng.shuffle(later)
    index = EventIndex(WINDOW)
    next_id = 1
    for i, story in enumerate(stories):
        match = index.find(**story)
        if match is None:
            event_id, next_id = next_id, next_id + 1
        else:
            event_id = match.event_id
        seen = story["published"] + timedelta(hours=30 if i % 50 == 0 else 0)
        index.add(event_id, seen=max(seen, story["published"]), **story)
    index.prune(T0 + timedelta(hours=90))
    return index, later


def decide(index: EventIndex, stories: list[dict[str, Any]], first_id: int) -> list[object]:
    """Look up and add each story as ingest does; the decisions."""
    out: list[object] = []
    next_id = first_id
    for story in stories:
        match = index.find(**story)
        if match is None:
            event_id, next_id = next_id, next_id + 1
        else:
            event_id = match.event_id
        out.append(match)
        index.add(event_id, seen=story["published"], **story)
    return out


def test_a_loaded_index_is_the_saved_one_and_decides_the_same() -> None:
    index, later = busy_index(random.Random(11))
    assert len(index) > 500
    assert any(src._days for src in index._sources), "no source with named days"
    assert any(src.text for src in index._sources), "no source keeping its text"
    assert index._shingle_postings._recent, "every shingle posting merged: not covered"
    assert index._idf_cache, "nothing cached"
    copy = reloaded(index)
    same_event_index(index, copy)
    # What was saved and what was loaded go on alike: every decision, and the indexes after.
    live = decide(index, later, 100_000)
    again = decide(copy, later, 100_000)
    assert live == again
    assert sum(m is not None for m in live) > 20, "too few matches to tell anything"
    same_event_index(index, copy)
    index.prune(T0 + timedelta(hours=200))
    copy.prune(T0 + timedelta(hours=200))
    same_event_index(index, copy)


def test_an_empty_index_round_trips() -> None:
    copy = reloaded(EventIndex(WINDOW))
    same_event_index(EventIndex(WINDOW), copy)
    assert copy.find(title="Anything at all", summary="", published=T0, link=None) is None


@pytest.mark.parametrize(
    "damage",
    ["window", "cut runs", "runs backwards", "short column", "shingles", "missing"],
)
def test_a_damaged_state_is_refused(damage: str) -> None:
    index, _ = busy_index(random.Random(5))
    state = index.state()
    window = WINDOW
    if damage == "window":
        window = timedelta(hours=48)
    elif damage == "cut runs":
        state["tokens"] = state["tokens"][:-3]
    elif damage == "runs backwards":
        start = state["entities_start"].copy()
        start[5], start[6] = start[6], start[5] - 1
        state["entities_start"] = start
    elif damage == "short column":
        state["last"] = state["last"][:-1]
    elif damage == "shingles":
        state["shingles_start"] = state["shingles_start"][:-1]
    else:
        del state["df"]
    with pytest.raises((ValueError, KeyError)):
        EventIndex.from_state(window, state)


def test_days_and_dates_survive_exactly() -> None:
    index = EventIndex(WINDOW)
    published = datetime(2025, 7, 9, 23, 59, 59, 999999, tzinfo=UTC)
    index.add(
        1,
        title="Draft communique to be published on 10 July",
        summary="Leaders meet in Washington on Wednesday, 10 July 2025.",
        published=published,
        link="https://x.example/a",
    )
    days = index._sources[0].days()
    assert date(2025, 7, 10) in days
    copy = reloaded(index)
    assert copy._sources[0].published == published
    assert copy._sources[0]._days == days
    same_event_index(index, copy)


HASHES = """
from timeline.domain.clustering import _identities, _shingles, _words
words = _words("China rejects the accusations in the draft summit communique of 9 July")
print(sorted(_shingles(words)), sorted(_shingles(words[:2])))
print(_identities("https://www.example.com/a?utm_source=x", ["urn:uuid:1234567890abcdef"]))
"""


def test_hashes_are_the_same_in_every_process() -> None:
    """Python's own `hash` of a string changes with each process: these must not (a saved
    index is read by another process, and near copies must not depend on a restart)."""
    words = _words("China rejects the accusations in the draft summit communique of 9 July")
    here = (
        f"{sorted(_shingles(words))} {sorted(_shingles(words[:2]))}\n"
        f"{_identities('https://www.example.com/a?utm_source=x', ['urn:uuid:1234567890abcdef'])}\n"
    )
    for seed in ("1", "2"):
        got = subprocess.run(
            [sys.executable, "-c", HASHES],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert got == here
    assert all(0 <= h < 2**32 for h in _shingles(words))
    assert len(_shingles(words)) == len(words) - 2
