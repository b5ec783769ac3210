"""Run the storyline decision over a labelled split and score it pairwise."""

from __future__ import annotations

import random
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

from bench.farm import Vocabulary
from timeline.domain.storylines import WINDOW, StorylineIndex, subject

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
    ids = {i: e for e, i in numbers.items()}
    storyline: dict[str, int | None] = {}
    next_storyline = 1
    day = None
    for e in events:
        subj = subject(e.title, e.summary)
        if not e.story and e.id.startswith("~"):
            # Unrelated (`busy`): indexed, not placed; the window pruned once a day.
            if e.at.date() != day:
                day = e.at.date()
                index.prune(e.at)
            index.add(numbers[e.id], e.at, subj, None)
            continue
        index.prune(e.at)
        match = index.find(subj, e.at)
        sid: int | None = None
        if match is not None:
            sid = match.storyline_id
            if sid is None:
                sid = next_storyline
                next_storyline += 1
                index.set_storyline([match.event_id], sid)
                partner = ids[match.event_id]
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


def report(split: str, per_day: int = 0, topical: float = 0.0) -> dict[str, object]:
    """Precision, recall and the storylines found, for one split (among `per_day` unrelated
    events a day, `topical` of their words from the labelled texts: `busy`)."""
    events = load(split)
    got = assign(busy(events, per_day, topical=topical) if per_day else events)
    precision, recall, fp, fn = pairwise(events, got)
    out: dict[str, object] = {"split": split}
    if per_day:
        out["unrelated_per_day"] = per_day
        out["topical"] = topical
    return out | {
        "events": len(events),
        "storylines_labelled": len({e.story for e in events if e.story}),
        "storylines_found": len({s for s in got.values() if s is not None}),
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "false_pairs": fp,
        "missed_pairs": fn,
    }


def busy(
    events: list[Labelled], per_day: int, seed: int = 7, topical: float = 0.0
) -> list[Labelled]:
    """`events` among unrelated news (`bench.farm.Vocabulary` text, no storyline): `per_day`
    of them a day through the window before each labelled event, as a busy window holds
    (the 1,000-feed bench farm: ~900 a day). Pairs are scored over the labelled events
    only; the others can still draw them away (a labelled event joined to one of them is
    not with its own storyline).

    The farm's words do not cover the labelled subjects ("jets", "bridge"), so beside its
    text every word of theirs looks rare; with `topical` > 0 that share of the unrelated
    events' words is drawn from the words of both labelled splits instead (their labels are
    not used), as other stories of a real window use them."""
    vocab = Vocabulary(seed)
    rng = random.Random(seed)
    words = sorted(
        {
            w
            for split in SPLITS
            for e in load(split)
            for w in _PLAIN.findall(f"{e.title} {e.summary}")
        }
    )

    def sentence(n: int, *, title_case: bool = False) -> str:
        text = vocab.sentence(rng, n, title_case=title_case)
        if not topical:
            return text
        picked = [rng.choice(words) if rng.random() < topical else w for w in text.split()]
        return " ".join(picked)

    step = timedelta(days=1) / per_day
    out = list(events)
    covered: datetime | None = None  # background is generated up to here
    n = 0
    for e in events:
        start = e.at - WINDOW if covered is None else max(covered, e.at - WINDOW)
        at = start
        while at < e.at:
            title = sentence(rng.randint(7, 13), title_case=True)
            summary = " ".join(sentence(rng.randint(8, 16)) for _ in range(3))
            out.append(Labelled(f"~{n}", "", at, title, summary))
            n += 1
            at += step
        covered = max(covered or e.at, e.at)
    return sorted(out, key=lambda e: (e.at, e.id))


_PLAIN = re.compile(r"[A-Za-z][A-Za-z'-]+")
