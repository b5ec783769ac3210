"""The fair baseline: what a competent engineer writing a feed bot today would ship.

asyncio + aiohttp with 20 fetches at a time, conditional GET (ETag / Last-Modified kept per
URL), feedparser on the bytes (every item of a changed feed), ``INSERT OR IGNORE`` of each item
into SQLite keyed by (feed, guid or link), and a naive per-watch word test on the new ones.
No clustering, no search index, no alerts: the product does more per item, and this is the
floor it is compared with.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import feedparser

from bench.farm import WATCH_PHRASES, farm_control
from bench.measure import ProcessTreeMeter
from bench.poll import feed_urls

CONCURRENCY = 20


@dataclass
class FairConfig:
    """Which farm feeds to read, how many rounds, how many to change between them."""

    ports: list[int]
    feeds: int
    db_path: str
    rounds: int = 3
    share: float = 0.2
    watches: list[str] = field(default_factory=lambda: list(WATCH_PHRASES))


async def _fetch(
    session: aiohttp.ClientSession, url: str, validators: dict[str, dict[str, str]]
) -> tuple[int, bytes]:
    headers = {}
    seen = validators.get(url, {})
    if "etag" in seen:
        headers["If-None-Match"] = seen["etag"]
    if "modified" in seen:
        headers["If-Modified-Since"] = seen["modified"]
    async with session.get(url, headers=headers) as resp:
        if resp.status == 304:
            return 304, b""
        body = await resp.read()
        if resp.status == 200:
            kept = {}
            if "ETag" in resp.headers:
                kept["etag"] = resp.headers["ETag"]
            if "Last-Modified" in resp.headers:
                kept["modified"] = resp.headers["Last-Modified"]
            validators[url] = kept
        return resp.status, body


async def _round(
    urls: list[str],
    validators: dict[str, dict[str, str]],
    db: sqlite3.Connection,
    watch_words: list[list[str]],
) -> dict[str, int]:
    stats = {"fetched": 0, "not_modified": 0, "failed": 0, "parsed": 0, "new": 0, "matches": 0}
    gate = asyncio.Semaphore(CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(url: str) -> None:
            async with gate:
                try:
                    status, body = await _fetch(session, url, validators)
                except (aiohttp.ClientError, TimeoutError):
                    stats["failed"] += 1
                    return
            if status == 304:
                stats["not_modified"] += 1
                return
            if status != 200:
                stats["failed"] += 1
                return
            stats["fetched"] += 1
            parsed = feedparser.parse(body)
            rows = []
            for entry in parsed.entries:
                stats["parsed"] += 1
                key = entry.get("id") or entry.get("link") or entry.get("title", "")
                rows.append((url, key, entry.get("title", ""), entry.get("summary", "")))
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO items (feed, key, title, summary) VALUES (?, ?, ?, ?)",
                rows,
            )
            db.commit()
            if db.total_changes - before:
                new_keys = {r[1] for r in rows}
                stats["new"] += db.total_changes - before
                # The naive word test, on this feed's items (cheap next to the parse).
                for _, key, title, summary in rows:
                    if key in new_keys:
                        text = f"{title} {summary}".lower()
                        stats["matches"] += sum(
                            all(w in text for w in words) for words in watch_words
                        )

        await asyncio.gather(*(one(u) for u in urls))
    return stats


def run_fair(config: FairConfig) -> dict[str, Any]:
    """Poll the farm like the fair baseline does; return figures per round."""
    urls = feed_urls(config.ports, config.feeds)
    watch_words = [phrase.lower().split() for phrase in config.watches]
    db = sqlite3.connect(config.db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, feed TEXT, key TEXT, title TEXT, "
        "summary TEXT, UNIQUE (feed, key))"
    )
    validators: dict[str, dict[str, str]] = {}
    rounds = []
    with ProcessTreeMeter() as meter:
        # A first, unmeasured round fills the database and the validators.
        asyncio.run(_round(urls, validators, db, watch_words))
        for n in range(config.rounds):
            farm = farm_control(config.ports, "advance", share=config.share)
            cpu0 = meter.cpu()
            started = time.perf_counter()
            stats = asyncio.run(_round(urls, validators, db, watch_words))
            rounds.append(
                {
                    "round": n + 1,
                    "wall_s": time.perf_counter() - started,
                    "cpu_s": meter.cpu() - cpu0,
                    "farm_new_items": farm["new_items"],
                    **stats,
                }
            )
        peak_rss = meter.peak_rss
    db.close()
    walls = sorted(r["wall_s"] for r in rounds)
    cpu = sum(r["cpu_s"] for r in rounds)
    new = sum(r["new"] for r in rounds)
    return {
        "feeds": len(urls),
        "rounds": rounds,
        "round_wall_p50_s": walls[len(walls) // 2],
        "feeds_per_s": len(urls) * len(rounds) / sum(walls),
        "new_items_per_s": new / sum(walls) if walls else 0.0,
        "cpu_s_per_round": cpu / len(rounds),
        "peak_rss_mb": peak_rss / 1e6,
    }
