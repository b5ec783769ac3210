"""The common approach, as a baseline: `feedparser.parse(url)` on each feed in turn.

No conditional requests, no concurrency, a set of seen ids in memory and substring checks of
the watch words. (The product never hands feedparser a URL; only this baseline does.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import feedparser

from bench.farm import WATCH_PHRASES, farm_control
from bench.measure import ProcessTreeMeter
from bench.poll import feed_urls

log = logging.getLogger(__name__)


@dataclass
class BaselineConfig:
    """Which farm feeds to read, how many rounds, how many to change between them."""

    ports: list[int]
    feeds: int
    rounds: int = 1
    share: float = 0.2
    watches: list[str] = field(default_factory=lambda: list(WATCH_PHRASES))


def run_baseline(config: BaselineConfig) -> dict[str, Any]:
    """Read every feed with feedparser.parse(url), one after the other, each round."""
    urls = feed_urls(config.ports, config.feeds)
    watch_words = [phrase.lower().split() for phrase in config.watches]
    seen: set[str] = set()
    rounds = []
    with ProcessTreeMeter() as meter:
        for n in range(config.rounds):
            farm = farm_control(config.ports, "advance", share=config.share)
            cpu0 = meter.cpu()
            started = time.perf_counter()
            items = new = matches = failed = 0
            for url in urls:
                parsed = feedparser.parse(url)
                if parsed.get("status", 200) >= 400 or not parsed.entries:
                    failed += 1
                for entry in parsed.entries:
                    items += 1
                    key = entry.get("id") or entry.get("link") or entry.get("title", "")
                    if key not in seen:
                        seen.add(key)
                        new += 1
                    text = f"{entry.get('title', '')} {entry.get('summary', '')}".lower()
                    matches += sum(all(w in text for w in words) for words in watch_words)
            wall = time.perf_counter() - started
            rounds.append(
                {
                    "round": n + 1,
                    "feeds": len(urls),
                    "wall_s": wall,
                    "cpu_s": meter.cpu() - cpu0,
                    "items_parsed": items,
                    # The first round has seen nothing before: every item is "new" to it.
                    "new_items": new if n else None,
                    "farm_new_items": farm["new_items"],
                    "matches": matches,
                    "failed_feeds": failed,
                }
            )
            log.info("baseline round %d: %s", n + 1, rounds[-1])
        peak_rss = meter.peak_rss
    walls = [r["wall_s"] for r in rounds]
    steady_new = [r for r in rounds if r["new_items"] is not None]
    if steady_new:
        new_per_s = sum(r["new_items"] for r in steady_new) / sum(r["wall_s"] for r in steady_new)
        new_basis = "measured (rounds after the first)"
    else:
        # One round only: it reads every item the farm published, so its new items are the
        # farm's new items for that round.
        new_per_s = sum(r["farm_new_items"] for r in rounds) / sum(walls)
        new_basis = "farm's new items / round wall (one round)"
    cpu = sum(r["cpu_s"] for r in rounds)
    parsed = sum(r["items_parsed"] for r in rounds)
    return {
        "feeds": len(urls),
        "rounds": rounds,
        "round_wall_p50_s": sorted(walls)[len(walls) // 2],
        "feeds_per_s": len(urls) * len(rounds) / sum(walls),
        "new_items_per_s": new_per_s,
        "new_items_basis": new_basis,
        "cpu_s_per_round": cpu / len(rounds),
        "cpu_s_per_1000_parsed_items": 1000 * cpu / parsed if parsed else None,
        "peak_rss_mb": peak_rss / 1e6,
    }
