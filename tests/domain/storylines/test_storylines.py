"""Storylines: the decision over labelled coverage, restarts, floods, titles, source briefs."""

from __future__ import annotations

import random
import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from tests.domain.storylines.labelled import HERE, Labelled, assign, load, report
from timeline.domain import storylines
from timeline.domain.storylines import (
    StorylineIndex,
    decode_subject,
    encode_subject,
    source_brief,
    subject,
)

PRECISION_TARGET = 0.95
RECALL_TARGET = 0.85


def test_labelled_splits_are_large_enough() -> None:
    for split in ("dev", "test"):
        events = load(split)
        stories = {e.story for e in events if e.story}
        assert len(events) >= 50 and len(stories) >= 8, split
        assert sum(not e.story for e in events) >= 10, split  # distractors
        assert len({e.id for e in events}) == len(events)
    assert not {e.id for e in load("dev")} & {e.id for e in load("test")}


def test_development_split_meets_the_targets() -> None:
    r = report("dev")
    assert r["precision"] >= PRECISION_TARGET and r["recall"] >= RECALL_TARGET, r  # type: ignore[operator]


def test_held_out_split_meets_the_targets() -> None:
    # The thresholds were chosen on the development split only; 0.89 recall measured.
    r = report("test")
    assert r["precision"] >= PRECISION_TARGET and r["recall"] >= RECALL_TARGET, r  # type: ignore[operator]


def test_held_out_split_meets_the_targets_in_a_busy_window() -> None:
    # Among 50 unrelated events a day (a labelled event's window then holds ~1,500 others,
    # so words have the frequencies of a real window): precision 1.0, recall 0.929 measured
    # (the same at 200 and 1,000 a day). The development split then gives 0.918 / 0.839:
    # see `python -m bench.storylines --busy`.
    r = report("test", per_day=50)
    assert r["precision"] >= PRECISION_TARGET and r["recall"] >= RECALL_TARGET, r  # type: ignore[operator]


def test_distractors_sharing_a_word_stay_alone() -> None:
    for split in ("dev", "test"):
        events = load(split)
        got = assign(events)
        alone = [e.id for e in events if not e.story and got[e.id] is None]
        assert len(alone) >= sum(not e.story for e in events) - 1, (split, got)


def reloaded(
    events: list[Labelled],
    numbers: dict[str, int],
    storyline: dict[str, int | None],
    now: datetime,
    stored: bool = False,
) -> StorylineIndex:
    """An index rebuilt as a restarted process loads it from the database: the events of the
    window, and the earlier events of a storyline still developing (one of its events within
    the window) within the window of its latest event; with `stored`, each subject read back
    from its stored form (`encode_subject`), else computed from the text."""
    index = StorylineIndex()
    cutoff = now - index.window
    developing = {storyline[e.id] for e in events if e.at >= cutoff} - {None}
    latest = {sid: max(e.at for e in events if storyline[e.id] == sid) for sid in developing}
    for e in events:
        sid = storyline[e.id]
        if e.at >= cutoff or (sid in latest and latest[sid] - e.at <= index.window):
            subj = subject(e.title, e.summary)
            if stored:
                back = decode_subject(encode_subject(subj))
                assert back is not None
                subj = back
            index.add(numbers[e.id], e.at, subj, sid)
    return index


@pytest.mark.parametrize("stored", [False, True])
@pytest.mark.parametrize("split", ["dev", "test"])
def test_a_restart_between_rounds_decides_the_same(split: str, stored: bool) -> None:
    events = load(split)
    straight = assign(events)
    numbers = {e.id: i for i, e in enumerate(events, 1)}
    # Restarts at every fifth event: a storyline's chain crosses several of them.
    for restart_at in range(5, len(events), 5):
        index = StorylineIndex()
        storyline: dict[str, int | None] = {}
        next_id = 1
        for n, e in enumerate(events):
            if n == restart_at:
                index = reloaded(events[:n], numbers, storyline, e.at, stored)
            index.prune(e.at)
            subj = subject(e.title, e.summary)
            match = index.find(subj, e.at)
            sid = None
            if match is not None:
                sid = match.storyline_id
                if sid is None:
                    sid, next_id = next_id, next_id + 1
                    index.set_storyline([match.event_id], sid)
                    partner = next(k for k, v in numbers.items() if v == match.event_id)
                    storyline[partner] = sid
            index.add(numbers[e.id], e.at, subj, sid)
            storyline[e.id] = sid
        assert storyline == straight, (split, restart_at, stored)


def test_a_developing_storyline_chains_and_a_longer_gap_ends_it() -> None:
    index = StorylineIndex(window=timedelta(days=30))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    text = "Slovak Prime Minister Robert Fico, shot in Handlova, {}."
    index.add(1, start, subject("Fico shot in Handlova", text.format("is in hospital")), 7)
    index.add(
        2, start + timedelta(days=25), subject("Fico leaves hospital", text.format("leaves")), 7
    )
    later = subject("Fico returns to work", text.format("returns to work"))
    # 50 days after the first event, 25 after the storyline's latest: the storyline goes on,
    # and pruning keeps its first event (within the window of the latest).
    assert index.prune(start + timedelta(days=50)) == 0 and len(index) == 2
    match = index.find(later, start + timedelta(days=50))
    assert match is not None and match.storyline_id == 7
    # More than the window after the storyline's latest event: it has ended.
    assert index.find(later, start + timedelta(days=56)) is None
    assert index.prune(start + timedelta(days=56)) == 2 and len(index) == 0


def test_a_flood_of_near_identical_items_makes_one_storyline_at_most() -> None:
    index = StorylineIndex()
    start = datetime(2025, 3, 1, tzinfo=UTC)
    storylines: set[int] = set()
    next_id = 1
    for i in range(300):
        at = start + timedelta(minutes=i)
        subj = subject(
            f"Flash sale: Acme Widgets Pro {i % 7} discounted in Berlin store",
            "Acme Widgets announces a discount on the Widgets Pro at its Berlin flagship store.",
        )
        match = index.find(subj, at)
        sid = None
        if match is not None:
            sid = match.storyline_id
            if sid is None:
                sid, next_id = next_id, next_id + 1
                index.set_storyline([match.event_id], sid)
        index.add(i + 1, at, subj, sid)
        if sid is not None:
            storylines.add(sid)
    assert len(storylines) == 1


def test_the_window_bounds_the_index_and_the_decision() -> None:
    index = StorylineIndex(window=timedelta(days=30))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    first = subject(
        "Fico shot in Handlova", "Slovak Prime Minister Robert Fico was shot in Handlova."
    )
    index.add(1, start, first)
    later = subject(
        "Fico returns to work", "Slovak Prime Minister Robert Fico, shot in Handlova, returns."
    )
    assert index.find(later, start + timedelta(days=20)) is not None
    assert index.find(later, start + timedelta(days=45)) is None  # beyond the window
    assert index.prune(start + timedelta(days=31)) == 1 and len(index) == 0


def test_a_storyline_is_named_by_its_shared_terms() -> None:
    index = StorylineIndex()
    for i, e in enumerate(x for x in load("test") if x.story == "fico"):
        index.add(i, e.at, subject(e.title, e.summary), 1)
    title = index.title_for(range(6))
    assert "Fico" in title.split(", ")
    assert len(title.split(", ")) <= 4


def test_source_briefs_name_what_the_new_source_adds() -> None:
    cases = tomllib.loads((HERE / "briefs.toml").read_text(encoding="utf-8"))["case"]
    assert len(cases) >= 15
    right = 0
    for case in cases:
        got = source_brief(case["new"], case["earlier"])
        if not case["adds"]:
            assert got is None, case["id"]
            right += 1
        elif got is not None and case["adds"].lower() in got.lower():
            right += 1
    assert right >= len(cases) - 1, right


def test_briefs_are_bounded_and_survive_odd_text() -> None:
    long = "Officials said " + "x" * 5000 + " 42 people were hurt."
    got = source_brief(long, ["Nothing."])
    assert got is None or len(got) <= 300
    assert source_brief("", ["a"]) is None
    assert source_brief("\x00\ufffd ### <t:1:R> [x](http://e.x) 12 dead.", []) is not None


def _filler(rng: random.Random, vocabulary: list[str], n: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(n))


def test_a_story_that_fills_a_busy_window_is_found_through_its_common_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2,000 unrelated events and 120 of one storyline: the storyline's words are in more
    # events than the postings walked for any term (`WALK_MIN`), and the new event's rarest
    # words are incidental ones a single other event has.
    rng = random.Random(5)
    syllables = ["ka", "lo", "mi", "ne", "tu", "ra", "so", "vi", "de", "po", "gu", "fe"]
    vocabulary = ["".join(rng.choice(syllables) for _ in range(4)) for _ in range(3000)]
    index = StorylineIndex()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rare = ["zorbaxil", "quenthor", "vimblet"]
    for i in range(2000):
        at = start + timedelta(minutes=10 * i)
        text = _filler(rng, vocabulary, 30) + (f" {rare[i % 3]}" if i < 3 else "")
        index.add(i, at, subject(_filler(rng, vocabulary, 8), text))
    story = (
        "Kenyan police fire tear gas as protesters in Nairobi demand President Ruto drop "
        "the finance bill"
    )
    for i in range(2000, 2120):
        at = start + timedelta(minutes=10 * i)
        index.add(i, at, subject(f"Kenya finance bill protests, day {i}", story), 1)
    assert all(index._df[next(iter(subject(w).terms))] == 1 for w in rare)
    assert index._df["ruto"] > storylines.WALK_MIN
    new = subject(
        "Kenya finance bill protests go on",
        f"{story}, {' '.join(rare)} witnesses said.",
    )
    at = start + timedelta(minutes=10 * 2120)
    match = index.find(new, at)
    assert match is not None and match.storyline_id == 1
    # The same decision as walking every posting.
    monkeypatch.setattr(storylines, "WALK_MIN", 10**9)
    assert index.find(new, at) == match
