"""Run the storyline decision over a labelled split and score it pairwise."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

from timeline.domain.storylines import StorylineIndex, subject

HERE = Path(__file__).resolve().parent
SPLITS = ("dev", "test")


@dataclass(frozen=True)
class Labelled:
    id: str
    story: str
    at: datetime
    title: str
    summary: str


def load(split: str) -> list[Labelled]:
    """The events of one split, oldest first (ties by id)."""
    data = tomllib.loads((HERE / f"labelled_{split}.toml").read_text(encoding="utf-8"))
    events = [
        Labelled(
            e["id"],
            e["story"],
            datetime.fromisoformat(e["date"]).replace(tzinfo=UTC),
            e["title"],
            e["summary"],
        )
        for e in data["event"]
    ]
    return sorted(events, key=lambda e: (e.at, e.id))


def assign(events: list[Labelled]) -> dict[str, int | None]:
    """Place the events one by one as ingest does; return event id -> storyline number."""
    index = StorylineIndex()
    numbers = {e.id: i for i, e in enumerate(events, 1)}
    storyline: dict[str, int | None] = {}
    next_storyline = 1
    for e in events:
        index.prune(e.at)
        subj = subject(e.title, e.summary)
        match = index.find(subj, e.at)
        sid: int | None = None
        if match is not None:
            sid = match.storyline_id
            if sid is None:
                sid = next_storyline
                next_storyline += 1
                index.set_storyline([match.event_id], sid)
                partner = next(k for k, v in numbers.items() if v == match.event_id)
                storyline[partner] = sid
        index.add(numbers[e.id], e.at, subj, sid)
        storyline[e.id] = sid
    return storyline


def pairwise(events: list[Labelled], got: dict[str, int | None]) -> tuple[float, float, int, int]:
    """Pairwise precision and recall: is each pair in one storyline, truly and as predicted."""
    tp = fp = fn = 0
    for a, b in combinations(events, 2):
        truth = bool(a.story) and a.story == b.story
        said = got[a.id] is not None and got[a.id] == got[b.id]
        tp += truth and said
        fp += said and not truth
        fn += truth and not said
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, fp, fn


def wrong_pairs(split: str) -> dict[str, list[str]]:
    """The pairs a split gets wrong: "missed" (one storyline, not placed together) and
    "false" (placed together, not one storyline), as "a b" event ids, with each event's
    storyline as found in brackets (None: in none)."""
    events = load(split)
    got = assign(events)
    out: dict[str, list[str]] = {"missed": [], "false": []}
    for a, b in combinations(events, 2):
        truth = bool(a.story) and a.story == b.story
        said = got[a.id] is not None and got[a.id] == got[b.id]
        if truth != said:
            kind = "missed" if truth else "false"
            out[kind].append(f"{a.id} [{got[a.id]}] {b.id} [{got[b.id]}]")
    return out


def report(split: str) -> dict[str, object]:
    """Precision, recall and the storylines found, for one split."""
    events = load(split)
    got = assign(events)
    precision, recall, fp, fn = pairwise(events, got)
    return {
        "split": split,
        "events": len(events),
        "storylines_labelled": len({e.story for e in events if e.story}),
        "storylines_found": len({s for s in got.values() if s is not None}),
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "false_pairs": fp,
        "missed_pairs": fn,
    }
