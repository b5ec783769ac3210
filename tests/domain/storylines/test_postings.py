"""The storyline index's candidate search against a plain reading of its rule.

`StorylineIndex._overlaps` finds candidates through numpy views of slot postings that keep
removed events' slots until a rebuild. Here it is compared, after every kind of change (adds,
re-adds, removals, prunes, rebuilds), with the rule written out over the indexed events
themselves: document frequencies counted from scratch, the shared terms summed one by one.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from timeline.domain import storylines
from timeline.domain.storylines import MAX_CANDIDATES, MIN_SHARED, StorylineIndex, Subject, subject

START = datetime(2025, 3, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A small vocabulary with a few very common words, so rare, walked-within-budget, common and
# weightless (too common) terms all occur among a few hundred events.
WORDS = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(160)]


def text(rng: random.Random) -> tuple[str, str]:
    picks = rng.choices(WORDS, weights=[1 / (1 + i) ** 0.8 for i in range(len(WORDS))], k=24)
    return " ".join(picks[:6]), " ".join(picks[6:]) + "."


def reference(index: StorylineIndex, subj: Subject) -> tuple[list[int], bool, bool]:
    """The candidates `_overlaps` must return, from the indexed events alone, whether some
    of `subj`'s terms were too common to walk (counted only for the events found), and
    whether some of those were past `COMMON_BUDGET` (not counted)."""
    members = {e: s for e in index._members if (s := index.subject_of(e)) is not None}
    n = len(members)
    df = {t: sum(1 for s in members.values() if t in s.terms) for t in subj.terms}
    top = n + storylines.IDF_PRIOR
    cut = storylines.COMMON_SHARE * n if n >= 20 else float("inf")
    idf = {t: 0.0 if df[t] > cut else math.log(top / (df[t] + 1)) for t in subj.terms}
    assert idf == {t: index.idf(t) for t in subj.terms}
    cap = min(max(storylines.WALK_MIN, storylines.WALK_SHARE * n), storylines.WALK_CAP)
    walked: set[str] = set()
    budget = storylines.WALK_BUDGET
    for count, term in sorted((df[t], t) for t in subj.terms if idf[t] > 0):
        if count <= cap or count <= budget or not walked:
            walked.add(term)
            if count > cap:
                budget -= count
        else:
            break
    counted: set[str] = set()  # the unwalked terms that count: rarest first, in the budget
    budget = storylines.COMMON_BUDGET
    for count, term in sorted((df[t], t) for t in subj.terms if idf[t] > 0 and t not in walked):
        if count > budget:
            break
        budget -= count
        counted.add(term)
    order = [t for t in subj.terms if t in walked] + [t for t in subj.terms if t in counted]
    scored = []
    for event_id, other in members.items():
        shared = [t for t in order if t in other.terms]
        if len(shared) < MIN_SHARED or not walked.intersection(shared):
            continue
        mass = 0.0
        for t in shared:  # rare terms first, each group in the subject's order
            mass += idf[t]
        scored.append((-mass, event_id))
    common = any(t in counted for t in subj.terms)
    skipped = any(idf[t] > 0 and t not in walked and t not in counted for t in subj.terms)
    return [e for _, e in sorted(scored)[:MAX_CANDIDATES]], common, skipped


def check_entries(index: StorylineIndex, subjects: dict[int, Subject], probe: Subject) -> None:
    """The index's entries give back each event's subject, its counts by term id are the
    counts by term, and `_scores` scores as `score` does, event by event."""
    for event_id, subj in subjects.items():
        assert index.subject_of(event_id) == subj
    for member in index._members.values():  # the dates `find` filters candidates by
        assert index._slot_at[member.slot] == (member.at - EPOCH) // timedelta(microseconds=1)
    for term, tid in index._term_id.items():
        assert index._term_of[tid] == term
        assert index._df_by_id[tid] == index._df.get(term, 0)
        assert index._name_df_by_id[tid] == index._name_df.get(term, 0)
        assert index._lower_df_by_id[tid] == index._lower_df.get(term, 0)
    assert set(index._df) <= index._term_id.keys()
    cache: dict[str, float] = {}
    index._overlaps(probe, cache)
    a_vec = index.weighted(probe, cache)
    weighed = index._weigh(probe)
    assert weighed.cache == cache
    assert weighed.vector == a_vec
    assert weighed.names == {t for t in probe.terms if cache[t] > 0 and index.is_name(probe, t)}
    members = list(index._members.values())
    got = index._scores([m.slot for m in members], weighed)
    for member, (score, shared, named) in zip(members, got, strict=True):
        want = index.score(probe, subjects[member.event_id], dict(cache), a_vec)
        assert score == pytest.approx(want[0], rel=1e-12, abs=1e-15)
        assert (shared, named) == want[1:]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_candidates_follow_the_rule_through_removals_and_rebuilds(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storylines, "COMPACT_MIN", 40)  # rebuild often
    monkeypatch.setattr(storylines, "WALK_BUDGET", 120)  # leave terms unwalked more often
    monkeypatch.setattr(storylines, "COMMON_BUDGET", 150)  # and some of those uncounted
    rng = random.Random(seed)
    index = StorylineIndex(window=timedelta(days=12))
    subjects: dict[int, Subject] = {}
    compactions = 0
    original = StorylineIndex._compact

    def counting(self: StorylineIndex) -> None:
        nonlocal compactions
        compactions += 1
        original(self)

    monkeypatch.setattr(StorylineIndex, "_compact", counting)
    next_id = 0
    probes = with_common = with_skipped = 0
    for step in range(2400):
        at = START + timedelta(minutes=20 * step)
        action = rng.random()
        if action < 0.7 or not subjects:
            subjects[next_id] = subject(*text(rng))
            index.add(next_id, at, subjects[next_id], None)
            next_id += 1
        elif action < 0.8:
            event_id = rng.choice(sorted(subjects))  # added again: a new slot
            index.add(event_id, at, subjects[event_id], None)
        elif action < 0.9:
            event_id = rng.choice(sorted(subjects))
            index.remove(event_id)
            del subjects[event_id]
        else:
            index.prune(at)
            subjects = {e: s for e, s in subjects.items() if e in index}
        if step % 20 == 0:
            probe = subject(*text(rng))
            wanted, common, skipped = reference(index, probe)
            assert index._overlaps(probe, {}) == wanted, step
            check_entries(index, subjects, probe)
            probes += 1
            with_common += common
            with_skipped += skipped
    assert compactions >= 2, compactions
    assert with_common >= probes // 3, (with_common, probes)
    assert with_skipped >= probes // 5, (with_skipped, probes)
    assert len(index) == len(subjects)


def test_a_rebuild_leaves_only_live_slots() -> None:
    rng = random.Random(9)
    index = StorylineIndex()
    for event_id in range(3000):
        index.add(event_id, START, subject(*text(rng)), None)
    for event_id in range(0, 3000, 2):
        index.remove(event_id)  # 1,500 dead: past COMPACT_MIN and the 1,500 left
    assert index._dead == 0
    events = list(index._slot_event)
    assert sorted(events) == list(range(1, 3000, 2)) and events == sorted(events)
    for term, posting in index._postings.items():
        assert len(posting) == index._df[term]
        assert all(events[slot] >= 0 for slot in posting)
    for event_id, member in index._members.items():
        assert events[member.slot] == event_id


def same_index(a: StorylineIndex, b: StorylineIndex) -> None:
    """Two indexes hold the same: members (in order), slots, postings, entries, ids, counts."""
    assert [(m.event_id, m.at, m.storyline_id, m.slot) for m in a._members.values()] == [
        (m.event_id, m.at, m.storyline_id, m.slot) for m in b._members.values()
    ]
    assert {t: list(p) for t, p in a._postings.items()} == {
        t: list(p) for t, p in b._postings.items()
    }
    for name in ("_slot_event", "_slot_at", "_slot_start", "_entry_term", "_entry_form"):
        assert list(getattr(a, name)) == list(getattr(b, name)), name
    for name in ("_entry_weight", "_entry_kind", "_weights", "_weight_code", "_dead"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("_term_id", "_term_of", "_form_id", "_form_of", "_by_storyline"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("_df", "_name_df", "_lower_df"):
        assert +getattr(a, name) == +getattr(b, name), name
    terms = len(a._term_of)
    for name in ("_df_by_id", "_name_df_by_id", "_lower_df_by_id"):
        assert getattr(a, name)[:terms].tolist() == getattr(b, name)[:terms].tolist(), name
        assert not getattr(b, name)[terms:].any(), name


@pytest.mark.parametrize("seed", [4, 5])
def test_an_index_saved_as_arrays_comes_back_the_same(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`state` / `from_state` (the snapshot a restart loads) through adds, re-adds,
    removals, prunes, rebuilds and storyline changes: the loaded index holds the same and
    decides the same for new events."""
    monkeypatch.setattr(storylines, "COMPACT_MIN", 40)
    rng = random.Random(seed)
    index = StorylineIndex(window=timedelta(days=12))
    subjects: dict[int, Subject] = {}
    for step in range(900):
        at = START + timedelta(minutes=20 * step, microseconds=rng.randrange(10**6))
        action = rng.random()
        if action < 0.75 or not subjects:
            title, body = text(rng)
            # Capitalised words too (names, a sentence's first word), and some storylines.
            title = " ".join(w.capitalize() if rng.random() < 0.3 else w for w in title.split())
            subjects[step] = subject(title, body.capitalize())
            index.add(step, at, subjects[step], rng.choice([None, None, 1, 2, 3 + step // 50]))
        elif action < 0.81:
            index.set_storyline([rng.choice(sorted(subjects))], rng.choice([None, 7]))
        elif action < 0.85:  # an earlier source joined it: its date moves back
            index.move_earlier(
                rng.choice(sorted(subjects)), at - timedelta(days=rng.randint(0, 20))
            )
        elif action < 0.95:
            event_id = rng.choice(sorted(subjects))
            index.remove(event_id)
            del subjects[event_id]
        else:
            index.prune(at)
            subjects = {e: s for e, s in subjects.items() if e in index}
        if step % 150 == 149:
            loaded = StorylineIndex.from_state(index.window, index.state())
            same_index(index, loaded)
            check_entries(loaded, subjects, subject(*text(rng)))
            for _ in range(5):
                probe = subject(*text(rng))
                assert loaded.find(probe, at) == index.find(probe, at)
            assert loaded.title_for(subjects) == index.title_for(subjects)
    assert StorylineIndex.from_state(timedelta(days=1), StorylineIndex().state()).state().keys()


def test_arrays_that_do_not_fit_together_are_refused() -> None:
    rng = random.Random(6)
    index = StorylineIndex()
    for event_id in range(50):
        index.add(event_id, START, subject(*text(rng)), None)
    state = index.state()
    broken = [
        {**state, "member_slot": state["member_slot"][:-1]},
        {**state, "entry_term": state["entry_term"] + 10_000},
        {**state, "slot_start": state["slot_start"][:-2]},
        {**state, "terms": state["terms"][:-1]},
        {**state, "postings": state["postings"][1:]},
        {**state, "member_event": state["member_event"][::-1].copy()},
    ]
    for damaged in broken:
        with pytest.raises(ValueError):
            StorylineIndex.from_state(index.window, damaged)
    with pytest.raises(KeyError):
        StorylineIndex.from_state(index.window, {k: v for k, v in state.items() if k != "df"})
    naive = StorylineIndex()
    naive.add(1, datetime(2025, 1, 1), subject("A b c", "d"), None)  # (naive: the case)
    with pytest.raises(ValueError, match="time zone"):
        naive.state()


def test_a_date_moved_earlier_takes_an_event_out_of_the_window() -> None:
    """`find` keeps the candidates within the window by the dates of their slots: moving an
    event's date earlier (`move_earlier`) moves it there too."""
    index = StorylineIndex(window=timedelta(days=30))
    story = ("Kestrel Dam talks resume in Ostrava", "Engineers and the Kestrel Dam board met.")
    for event_id in range(40):  # others, so the story's terms are rare
        index.add(event_id, START, subject(f"Harbour {event_id} report", "Ships came in."))
    index.add(100, START, subject(*story))
    later = START + timedelta(days=20)
    assert index.find(subject(*story), later) is not None
    index.move_earlier(100, START - timedelta(days=15))  # now 35 days before `later`
    assert index.find(subject(*story), later) is None
    assert index.find(subject(*story), START) is not None
