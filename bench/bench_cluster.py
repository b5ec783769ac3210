"""Time the clustering of one ingest round against a full 72-hour index.

A round is 1,000 new entries looked up (and then added) against an index of the recent
events' sources (10,000 by default), as ingest does. The stories are synthetic but shaped
like news: Zipf-distributed vocabulary, capitalised names, 10-word titles, 35-word summaries;
a share of the new entries are wire copies or retellings of indexed events.

    .venv/bin/python bench/bench_cluster.py [--events 10000] [--entries 1000] [--seed 7]

Prints figures; never asserts on time (benchmarks are not tests).
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timeline.domain.clustering import EventIndex

SYLLABLES = [a + b for a in "bcdfghjklmnprstvwz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]
START = datetime(2025, 7, 1, tzinfo=UTC)


class Newsroom:
    """Write synthetic news stories from a fixed, Zipf-weighted vocabulary."""

    def __init__(self, rng: random.Random, words: int = 20_000, names: int = 3_000) -> None:
        self.rng = rng
        self.words = [self._word(2 + i % 3) for i in range(words)]
        self.word_weights = list(itertools.accumulate(1 / (i + 1) for i in range(words)))
        self.names = [self._word(2 + i % 2).capitalize() for i in range(names)]
        self.name_weights = list(itertools.accumulate(1 / (i + 1) ** 0.8 for i in range(names)))

    def _word(self, syllables: int) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(syllables))

    def _phrase(self, n: int, names: int) -> list[str]:
        out = self.rng.choices(self.words, cum_weights=self.word_weights, k=n)
        for name in self.rng.choices(self.names, cum_weights=self.name_weights, k=names):
            out.insert(self.rng.randrange(1, len(out) + 1), name)
        return out

    def story(self, published: datetime) -> dict[str, object]:
        """Return a new story (title, summary, published, link)."""
        title = self._phrase(8, 2)
        summary = self._phrase(30, 4)
        return {
            "title": " ".join(title).capitalize(),
            "summary": " ".join(summary).capitalize() + ".",
            "published": published,
            "link": f"https://news.example/{self.rng.getrandbits(64):x}",
        }

    def rewrite(self, story: dict[str, object], edits: int) -> dict[str, object]:
        """Return another outlet's copy of `story` with `edits` words swapped per part."""
        out = dict(story)
        for part in ("title", "summary"):
            words = str(story[part]).split()
            for _ in range(edits):
                words[self.rng.randrange(len(words))] = self.rng.choice(self.words)
            out[part] = " ".join(words)
        out["published"] = story["published"] + timedelta(minutes=self.rng.randrange(5, 300))  # type: ignore[operator]
        out["link"] = f"https://other.example/{self.rng.getrandbits(64):x}"
        return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=1_000)
    parser.add_argument("--copies", type=float, default=0.3, help="share of entries that copy")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    room = Newsroom(rng)
    horizon = timedelta(hours=72).total_seconds()
    events = [
        room.story(START + timedelta(seconds=rng.uniform(0, horizon))) for _ in range(args.events)
    ]
    round_at = START + timedelta(hours=72)
    entries = []
    for _ in range(args.entries):
        if rng.random() < args.copies:
            entries.append(room.rewrite(rng.choice(events[-2000:]), edits=rng.choice((1, 2, 4))))
        else:
            entries.append(room.story(round_at + timedelta(seconds=rng.uniform(0, 900))))

    c0, t0 = time.process_time(), time.perf_counter()
    index = EventIndex()
    for event_id, story in enumerate(events):
        index.add(event_id, **story)  # type: ignore[arg-type]
    c1, t1 = time.process_time(), time.perf_counter()
    stages: Counter[str] = Counter()
    next_id = len(events)
    for story in entries:
        match = index.find(**story)  # type: ignore[arg-type]
        if match is None:
            event_id, next_id = next_id, next_id + 1
            stages["new"] += 1
        else:
            event_id = match.event_id
            stages[match.stage] += 1
        index.add(event_id, **story)  # type: ignore[arg-type]
    c2, t2 = time.process_time(), time.perf_counter()

    # CPU time is the figure to compare (one core, single thread); wall time shows how busy
    # the machine was.
    print(f"index build: {args.events} events in {c1 - c0:.3f} s CPU ({t1 - t0:.3f} s wall)")
    print(
        f"round: {args.entries} entries (find + add) in {c2 - c1:.3f} s CPU"
        f" ({t2 - t1:.3f} s wall, {(c2 - c1) / args.entries * 1e3:.3f} ms per entry)"
    )
    print(f"build + round: {c2 - c0:.3f} s CPU")
    print("decisions: " + ", ".join(f"{k}={v}" for k, v in sorted(stages.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
