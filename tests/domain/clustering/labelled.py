"""Load the labelled pairs and score the clustering decision against them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from timeline.domain.clustering import EventIndex, Match

PAIRS_FILE = Path(__file__).with_name("labelled_pairs.toml")


@dataclass(frozen=True)
class Outcome:
    """One pair, its label and what the index decided."""

    index: int
    kind: str
    same: bool
    match: Match | None
    note: str

    @property
    def merged(self) -> bool:
        return self.match is not None


def load_pairs() -> list[dict[str, Any]]:
    """Return the labelled pairs as dicts with parsed datetimes."""
    with PAIRS_FILE.open("rb") as fh:
        pairs: list[dict[str, Any]] = tomllib.load(fh)["pair"]
    for pair in pairs:
        for side in ("a", "b"):
            pair[side]["published"] = datetime.fromisoformat(pair[side]["published"])
    return pairs


def _story(side: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": side["title"],
        "summary": side.get("summary", ""),
        "published": side["published"],
        "link": side.get("link"),
        "keys": side.get("keys", ()),
    }


def evaluate(crowded: bool = False, window: timedelta = timedelta(hours=72)) -> list[Outcome]:
    """Decide every pair: `b` is looked up in an index holding `a` (event id 0).

    With `crowded`, the index also holds every other pair's `a` (as ids 1..n), as a real
    72-hour index would. Several pairs share the same `a` story (same link); a match to any
    copy of it counts as merging the pair, a match to anything else does not (so a match to
    another outlet's report of the same happening counts as a miss: a lower bound). Stories
    with `b`'s own link are left out, since `b` is new to the index.
    """
    pairs = load_pairs()
    outcomes = []
    background: list[dict[str, Any]] = [p["a"] for p in pairs] if crowded else []
    for i, pair in enumerate(pairs):
        index = EventIndex(window)
        index.add(0, **_story(pair["a"]))
        same_as_a = {0}
        for j, other in enumerate(background, start=1):
            if other is not pair["a"] and other["link"] != pair["b"]["link"]:
                index.add(j, **_story(other))
                if other["link"] == pair["a"]["link"]:
                    same_as_a.add(j)
        got = index.find(**_story(pair["b"]))
        if got is not None and got.event_id not in same_as_a:
            got = None
        outcomes.append(Outcome(i, pair["kind"], pair["same"], got, pair.get("note", "")))
    return outcomes


def precision_recall(outcomes: list[Outcome]) -> tuple[float, float]:
    """Return (precision, recall) of the "same event" decision."""
    tp = sum(o.same and o.merged for o in outcomes)
    fp = sum(not o.same and o.merged for o in outcomes)
    fn = sum(o.same and not o.merged for o in outcomes)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall
