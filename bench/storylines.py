"""Storyline quality and cost: `python -m bench.storylines`.

Prints pairwise precision and recall on the labelled development split (where the thresholds
were chosen) and the held-out split, how many source briefs name the right fact, and the cost
of placing one event in an index of N recent events. Figures, not assertions.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.storylines.labelled import HERE, load, report  # noqa: E402
from timeline.storylines import StorylineIndex, source_brief, subject  # noqa: E402


def briefs() -> dict[str, int]:
    cases = tomllib.loads((HERE / "briefs.toml").read_text(encoding="utf-8"))["case"]
    right = 0
    for case in cases:
        got = source_brief(case["new"], case["earlier"])
        wanted = case["adds"].lower()
        right += (got is None) if not wanted else (got is not None and wanted in got.lower())
    return {"cases": len(cases), "right": right}


def cost(size: int, trials: int = 300) -> dict[str, float]:
    """Microseconds to reduce, place and index one event with `size` events indexed."""
    events = load("dev") + load("test")
    rng = random.Random(7)
    index = StorylineIndex(window=timedelta(days=10_000))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(size):
        e = events[i % len(events)]
        words = e.summary.split()
        rng.shuffle(words)
        index.add(i, start + timedelta(minutes=i), subject(e.title, " ".join(words)), None)
    began = time.perf_counter()
    for n in range(trials):
        e = events[n % len(events)]
        subj = subject(e.title, e.summary)
        index.find(subj, start + timedelta(minutes=size + n))
        index.add(size + n, start + timedelta(minutes=size + n), subj, None)
    per = (time.perf_counter() - began) / trials * 1e6
    return {"indexed": size, "us_per_event": round(per, 1)}


def main() -> int:
    out = {
        "command": "python -m bench.storylines",
        "load_average": os.getloadavg(),
        "splits": [report("dev"), report("test")],
        "briefs": briefs(),
        "cost": [cost(n) for n in (1_000, 10_000)],
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
