"""Storyline quality and cost: `python -m bench.storylines`.

Prints pairwise precision and recall on the labelled development split (where the thresholds
were chosen) and the held-out split, how many source briefs name the right fact, and the cost
of placing one event in an index of N recent events. Figures, not assertions.
`python -m bench.storylines --pairs` prints only the pairs each split gets wrong (quick);
`--farm` only the placement cost among 27,000 farm-like events (the 1,000-feed round's window);
`--busy [N]` only precision and recall with N unrelated events a day beside the labelled ones
(default 200), their words the farm's and then a fifth from the labelled texts: the windows of
a busy deployment, where the labelled sets alone hold <= 25.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.farm import Vocabulary
from feeds.types import FeedItem
from timeline.domain.clustering import EventIndex
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Feed
from timeline.storage.storylines import StorylineCache
from timeline.usecases.ingest import ingest as ingest_items
from timeline.usecases.ingest import load_watch_set

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.domain.storylines.labelled import HERE, SPLITS, load, report, wrong_pairs  # noqa: E402
from timeline.domain.storylines import StorylineIndex, source_brief, subject  # noqa: E402


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


def farm_cost(size: int = 27_000, trials: int = 500, seed: int = 7) -> dict[str, object]:
    """Microseconds to place and index one event among `size` farm-like events.

    The texts are the bench farm's (`bench.farm.Vocabulary`: Zipf-weighted news words and a
    long tail of names), the shape of the 1,000-feed round's 30-day window, where placement
    was the top cost. `matched` counts the new events that found an earlier one and
    `decisions` fingerprints every decision, so two implementations can be compared.
    """

    vocab = Vocabulary(seed)
    rng = random.Random(seed)

    def text() -> tuple[str, str]:
        title = vocab.sentence(rng, rng.randint(7, 13), title_case=True)
        summary = " ".join(vocab.sentence(rng, rng.randint(8, 16)) for _ in range(3))
        return title, summary

    index = StorylineIndex()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(days=29) / size
    for i in range(size):
        index.add(i, start + step * i, subject(*text()), None)
    news = [subject(*text()) for _ in range(trials)]
    digest = hashlib.sha256()
    matched = 0
    began = time.perf_counter()
    for n, subj in enumerate(news):
        at = start + step * (size + n)
        match = index.find(subj, at)
        sid = None
        if match is not None:
            matched += 1
            sid = match.storyline_id
            if sid is None:
                sid = size + n
                index.set_storyline([match.event_id], sid)
            digest.update(f"{n}:{match.event_id}:{match.storyline_id}:{match.score:.9f};".encode())
        index.add(size + n, at, subj, sid)
    per = (time.perf_counter() - began) / trials * 1e6
    return {
        "indexed": size,
        "placed": trials,
        "us_per_event": round(per, 1),
        "matched": matched,
        "decisions": digest.hexdigest()[:16],
    }


async def _ingest_rounds(
    url: str, with_storylines: bool, rounds: int, per_round: int
) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each round."""
    await upgrade_async(url)
    db = Database(url)
    events = load("dev") + load("test")
    rng = random.Random(11)
    cache = StorylineCache() if with_storylines else None
    index = EventIndex()
    now = datetime(2025, 3, 1, tzinfo=UTC)
    times = []
    try:
        async with db.session() as s:
            feeds = [Feed(name=f"f{i}", url=f"https://f{i}.example/rss") for i in range(20)]
            s.add_all(feeds)
            await s.flush()
            feed_ids = [f.id for f in feeds]
        n = 0
        for _ in range(rounds):
            now += timedelta(hours=1)
            began, began_cpu = time.perf_counter(), time.process_time()
            async with db.session() as s:
                watches = await load_watch_set(s)
                if cache is not None:
                    await cache.refresh(s, now)
            for fid in feed_ids:
                items = []
                for _ in range(per_round // len(feed_ids)):
                    e = events[n % len(events)]
                    words = e.summary.split()
                    rng.shuffle(words)
                    items.append(
                        FeedItem(
                            key=f"k{n}",
                            title=f"{e.title} {n}",
                            summary=" ".join(words),
                            link=f"https://x.example/{n}",
                            published=now - timedelta(minutes=rng.randrange(600)),
                        )
                    )
                    n += 1
                async with db.session() as s:
                    feed = await s.get(Feed, fid)
                    assert feed is not None
                    await ingest_items(
                        s,
                        feed,
                        items,
                        watches,
                        now=now,
                        alert=False,
                        events=index,
                        storylines=cache,
                    )
            times.append((time.perf_counter() - began, time.process_time() - began_cpu))
    finally:
        await db.dispose()
    return times


def ingest_cost(rounds: int = 8, per_round: int = 500, repeats: int = 2) -> dict[str, object]:
    """Seconds of an ingest round of `per_round` new items, storylines off and on.

    The same generated items (labelled texts, shuffled, distinct links) go through the real
    ingest into a real SQLite file; the last five rounds count (the index has filled). Off
    and on run `repeats` times in turn, and the lowest median of each counts. CPU seconds
    (this process) are the figure to read: wall seconds follow the machine's load.
    """
    out: dict[str, object] = {"items_per_round": per_round}
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(repeats):
            for label, on in (("off", False), ("on", True)):
                url = f"sqlite:///{tmp}/{label}{attempt}.db"
                times = asyncio.run(_ingest_rounds(url, on, rounds, per_round))[-5:]
                wall = statistics.median(w for w, _ in times)
                cpu = statistics.median(c for _, c in times)
                old = best.get(label)
                best[label] = (min(wall, old[0]), min(cpu, old[1])) if old else (wall, cpu)
    for label, (wall, cpu) in best.items():
        out[f"round_s_storylines_{label}"] = round(wall, 3)
        out[f"round_cpu_s_storylines_{label}"] = round(cpu, 3)
    out["overhead_wall"] = round(best["on"][0] / best["off"][0] - 1, 3)
    out["overhead"] = round(best["on"][1] / best["off"][1] - 1, 3)
    return out


# Unrelated events a day in the busy-window quality figures (`labelled.busy`): each labelled
# event's window then holds ~6,000 others (the 1,000-feed farm's: ~27,000). On 2026-12-08 the
# held-out split gave the same at 50, 200 and 1,000 a day; the development split's precision
# was 0.918 at 50 and 200 and 0.930 at 1,000.
BUSY_PER_DAY = 200
# ...and the share of their words drawn from the labelled texts in the second figure of each
# split (`labelled.busy`: the farm's words do not cover the labelled subjects).
BUSY_TOPICAL = 0.2


def main() -> int:
    if "--pairs" in sys.argv[1:]:
        print(json.dumps({split: wrong_pairs(split) for split in SPLITS}, indent=1))
        return 0
    if "--ingest" in sys.argv[1:]:
        out = {"load_average": os.getloadavg(), "ingest": ingest_cost()}
        print(json.dumps(out, indent=1))
        return 0
    if "--busy" in sys.argv[1:]:
        # Quality in a busy window: N unrelated events a day (default 200) beside the
        # labelled ones; ~1 minute a split at 1,000 a day.
        args = sys.argv[sys.argv.index("--busy") + 1 :]
        per_day = int(args[0]) if args and args[0].isdigit() else BUSY_PER_DAY
        out = {
            "load_average": os.getloadavg(),
            "splits": [report(s, per_day, t) for s in SPLITS for t in (0.0, BUSY_TOPICAL)],
        }
        print(json.dumps(out, indent=1))
        return 0
    if "--farm" in sys.argv[1:]:
        out = {"load_average": os.getloadavg(), "farm": farm_cost()}
        print(json.dumps(out, indent=1))
        return 0
    out = {
        "command": "python -m bench.storylines",
        "load_average": os.getloadavg(),
        "splits": [report("dev"), report("test")],
        "splits_busy": [report(s, BUSY_PER_DAY, t) for s in SPLITS for t in (0.0, BUSY_TOPICAL)],
        "briefs": briefs(),
        "cost": [cost(n) for n in (1_000, 10_000)],
        "farm": farm_cost(),
        "ingest": ingest_cost(),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
