"""Drive the real poller and ingest against the feed farm for several rounds.

Round 0 is the first poll of every feed (a silent backfill of ~50 items each); then before each
measured round the farm changes a share of its feeds and every feed is made due, so a round
polls all of them: the unchanged ones must cost a 304 (or a body hash), not a parse.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bench.coldstart import insert_rows
from bench.farm import WATCH_PHRASES, farm_control
from bench.measure import GcClock, ProcessTreeMeter, percentile
from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller, RoundReport
from feeds.types import FetchResult, FetchState
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Entry, Event, Feed, Watch
from timeline.storage.search import sync_search_index
from timeline.storage.storylines import NewEvent, StorylineCache
from timeline.usecases.heap import HeapKeeper
from timeline.usecases.polling import FeedOutcome, PollStore

log = logging.getLogger(__name__)


@dataclass
class PollConfig:
    """What to poll and how."""

    ports: list[int]
    feeds: int
    db_path: str
    rounds: int = 3
    share: float = 0.2
    parse_workers: int = 2
    skip_seen_items: bool = True
    # False: the store places no event in a storyline (what storylines cost a round).
    storylines: bool = True
    # Old entries (a year back, one event each) stored before the first poll: a steady round
    # over a big timeline (outside every window, so only the database's size differs).
    prefill: int = 0
    concurrency: int = 20
    per_host_concurrency: int = 4
    # Store the first poll with bulk inserts instead of the per-item ingest (see SeedStore).
    seed_backfill: bool = False
    urls: list[str] = field(default_factory=list)
    # Write a cProfile of one more steady round (after the measured ones) to this file.
    profile: str | None = None


class CountingFetcher:
    """Wrap a Fetcher to count what it parsed (items of "ok" results) and each outcome."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self.parsed_items = 0
        self.parsed_feeds = 0

    async def fetch(self, state: FetchState) -> FetchResult:
        """Fetch through the wrapped fetcher and count the parsed items."""
        result = await self.fetcher.fetch(state)
        if result.outcome == "ok":
            self.parsed_items += len(result.items)
            self.parsed_feeds += 1
        return result


class NoStorylines(StorylineCache):
    """A storyline cache that places nothing: `--no-storylines` measures a round without
    storylines, everything else the same."""

    async def refresh(self, session: AsyncSession, now: datetime) -> int:
        """Load nothing."""
        return 0

    async def place(
        self,
        session: AsyncSession,
        events: Sequence[NewEvent],
        *,
        now: datetime,
        subjects: dict[int, str] | None = None,
    ) -> dict[int, int]:
        """Place nothing."""
        return {}


class SeedStore:
    """A store for the first round that bulk-loads what the real Fetcher parsed.

    The product's first poll of 1,000 feeds stores ~50,000 entries one event at a time, with
    clustering: minutes of work that `--full` measures. `--quick` instead seeds the database as
    a previous run would have left it (entries, one event each, the feeds' ETag, Last-Modified
    and body hash), so the measured rounds start from a realistic steady state. Seeded entries
    are left out of the search index.
    """

    def __init__(self, store: PollStore) -> None:
        self.store = store

    async def claim_due(self, now: datetime | None = None, limit: int = 1000) -> list[Any]:
        """Claim through the real store."""
        return await self.store.claim_due(now, limit)

    async def begin_round(self, now: datetime | None = None) -> None:
        """Nothing to compile: seeding matches no watches."""

    async def record(
        self,
        due: Any,
        result: FetchResult,
        now: datetime | None = None,
        *,
        on_queued: Callable[[], None] | None = None,
    ) -> Any:
        """Bulk-store an "ok" result; hand anything else to the real store."""
        if result.outcome != "ok":
            return await self.store.record(due, result, now, on_queued=on_queued)
        if on_queued is not None:
            on_queued()  # stored one at a time, in turn
        now = now or datetime.now(UTC)
        async with self.store._writing(), self.store.db.session() as session:
            items = list({item.key: item for item in reversed(result.items)}.values())
            event_ids = list(
                (
                    await session.scalars(
                        insert(Event).returning(Event.id, sort_by_parameter_order=True),
                        [
                            {
                                "guild_id": 0,
                                "title": item.title or "(untitled)",
                                "link": item.link,
                                "occurred_at": item.published,
                                "created_at": now,
                                "updated_at": now,
                            }
                            for item in items
                        ],
                    )
                ).all()
            )
            await session.execute(
                insert(Entry),
                [
                    {
                        "feed_id": due.id,
                        "event_id": event_id,
                        "key": item.key,
                        "title": item.title,
                        "summary": item.summary,
                        "link": item.link,
                        "author": item.author,
                        "tags": list(item.tags),
                        "published_at": item.published,
                        "published_is_estimated": item.published_is_estimated,
                        "first_seen_at": now,
                    }
                    for item, event_id in zip(items, event_ids, strict=True)
                ],
            )
            await session.execute(
                update(Feed)
                .where(Feed.id == due.id)
                .values(
                    etag=result.state.etag,
                    last_modified=result.state.last_modified,
                    body_hash=result.state.body_hash,
                    backfilled=True,
                    status="ok",
                    last_checked_at=now,
                    last_success_at=now,
                    lease_owner=None,
                    lease_until=None,
                    next_check_at=now + timedelta(hours=1),
                )
            )
            # Seeded entries stay out of the search index (search is measured on its own, by
            # bench_query): tokenising 50,000 entries would double the seeding time.
            await session.execute(
                text(
                    "DELETE FROM entries_fts_pending WHERE entry_id IN (SELECT id FROM entries "
                    "WHERE feed_id = :feed)"
                ),
                {"feed": due.id},
            )
        self.store.held.discard(due.id)
        return FeedOutcome(due.id, due.name, due.state.url, "ok", new_entries=len(items))


def _size_mb(path: str) -> float:
    return Path(path).stat().st_size / 1e6


def feed_urls(ports: list[int], feeds: int) -> list[str]:
    """Return the farm URL of each feed (the farm's own numbering)."""
    return [f"http://127.0.0.1:{ports[i % len(ports)]}/f/{i}.xml" for i in range(feeds)]


async def setup_database(url: str, urls: list[str], channel_id: int | None = None) -> Database:
    """Create a fresh timeline database with one feed per URL and the bench watches.

    The watches post to channels 1000, 1001, ... unless `channel_id` is given.
    """
    await upgrade_async(url)
    db = Database(url)
    due = datetime.now(UTC) - timedelta(seconds=1)
    async with db.session() as session:
        session.add_all(
            Feed(name=f"News {i}", url=u, next_check_at=due) for i, u in enumerate(urls)
        )
        session.add_all(
            Watch(name=phrase, query=phrase, channel_id=channel_id or 1000 + i)
            for i, phrase in enumerate(WATCH_PHRASES)
        )
    return db


def prefill(path: str, entries: int) -> float:
    """Store `entries` old entries (and their events) with sqlite3 directly; return seconds.

    A year before now, one every 30 s, on the first feed; left out of the search index (as
    the seeded entries are: indexing a million would take longer than the run).
    """
    started = time.perf_counter()
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=365)
    (feed_id,) = con.execute("SELECT min(id) FROM feeds").fetchone()
    (first,) = con.execute("SELECT coalesce(max(id), 0) + 1 FROM events").fetchone()
    words = [w for phrase in WATCH_PHRASES for w in phrase.split()] or ["news"]
    for chunk in range(0, entries, 20_000):
        events, rows = [], []
        for i in range(chunk, min(entries, chunk + 20_000)):
            stamp = (start + timedelta(seconds=30 * i)).strftime("%Y-%m-%d %H:%M:%S.%f")
            title = f"Archive report {i} on {words[i % len(words)]} and {words[i * 7 % len(words)]}"
            link = f"https://archive.example/{i}"
            events.append((first + i, 0, title, link, stamp, 0, stamp, stamp))
            rows.append((feed_id, first + i, f"old{i}", title, title, link, stamp))
        insert_rows(con, events, rows)
    con.execute("DELETE FROM entries_fts_pending")
    con.commit()
    con.close()
    return time.perf_counter() - started


def _round_figures(
    label: str,
    report: Any,
    wall: float,
    cpu: float,
    farm: dict[str, Any] | None,
    parsed: tuple[int, int],
) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for o in report.outcomes:
        outcomes[o.outcome] = outcomes.get(o.outcome, 0) + 1
    new_items = sum(o.new_entries for o in report.outcomes)
    return {
        "round": label,
        "feeds": len(report.outcomes),
        "wall_s": wall,
        "cpu_s": cpu,
        "outcomes": outcomes,
        "new_items": new_items,
        "alerts": sum(len(o.alerts) for o in report.outcomes),
        "parsed_feeds": parsed[0],
        "parsed_items": parsed[1],
        "farm_new_items": farm["new_items"] if farm else None,
        "farm_changed_feeds": farm["changed"] if farm else None,
    }


async def poll_all(poller: Poller) -> RoundReport:
    """Poll every due feed, a claim batch after the other, as `App.poll_due` does (one
    `run_round` claims at most `poller.batch` feeds: 1,000 by default)."""
    total = RoundReport()
    while True:
        report = await poller.run_round()
        total.outcomes.extend(report.outcomes)
        total.seconds += report.seconds
        if len(report.outcomes) < poller.batch:
            return total


async def run_poll(config: PollConfig) -> dict[str, Any]:
    """Poll the farm `config.rounds` times after a backfill round; return the figures."""
    urls = config.urls or feed_urls(config.ports, config.feeds)
    db_url = f"sqlite:///{config.db_path}"
    db = await setup_database(db_url, urls)
    prefilled: float | None = None
    if config.prefill:
        # The search index's format stamped first, so it does not queue the old entries.
        async with db.session() as session:
            await sync_search_index(session)
        prefilled = await asyncio.get_running_loop().run_in_executor(
            None, prefill, config.db_path, config.prefill
        )
        log.info("prefilled %d old entries in %.0f s", config.prefill, prefilled)
    polling = PollingSettings(
        allow_private=("127.0.0.1",),
        jitter=0.0,
        timeout_seconds=10.0,
        per_host_concurrency=config.per_host_concurrency,
        concurrency=config.concurrency,
    )
    fetch_settings = FetchSettings(
        timeout_seconds=polling.timeout_seconds,
        max_body_bytes=polling.max_body_bytes,
        per_host_concurrency=polling.per_host_concurrency,
        allow_private=polling.allow_private,
        parse_workers=config.parse_workers,
        skip_seen_items=config.skip_seen_items,
    )
    rounds: list[dict[str, Any]] = []
    seeded: dict[str, Any] | None = None
    loop = asyncio.get_running_loop()
    try:
        with ProcessTreeMeter() as meter, GcClock() as gc_clock:
            async with Fetcher(fetch_settings) as real_fetcher:
                fetcher = CountingFetcher(real_fetcher)
                store = PollStore(db, polling, owner="bench", heap=HeapKeeper())
                if not config.storylines:
                    store.storylines = NoStorylines()
                poller = Poller(store, fetcher, concurrency=polling.concurrency)
                for n in range(config.rounds + 1):
                    farm = None
                    if n == 0 and config.seed_backfill:
                        # The first sync of a fresh search index stamps its format (else it
                        # would queue every seeded entry for indexing in the first round).
                        async with db.session() as session:
                            await sync_search_index(session)
                        seeder = Poller(SeedStore(store), fetcher, concurrency=polling.concurrency)
                        started = loop.time()
                        report = await poll_all(seeder)
                        seeded = {
                            "seconds": loop.time() - started,
                            "entries": sum(o.new_entries for o in report.outcomes),
                        }
                        # Load the recent events into the clustering index, as a restarted
                        # poller does on its first round: not part of a steady round.
                        started = loop.time()
                        await store.begin_round()
                        seeded["event_index_load_s"] = loop.time() - started
                        continue
                    if n:
                        # Farm and database preparation are not part of the round.
                        farm = await loop.run_in_executor(
                            None, lambda: farm_control(config.ports, "advance", share=config.share)
                        )
                        await store.make_all_due()
                    cpu0, main0 = meter.cpu(), meter.cpu_main()
                    gc0 = (gc_clock.seconds, gc_clock.full)
                    meter.reset_window()
                    parsed0 = (fetcher.parsed_feeds, fetcher.parsed_items)
                    started = loop.time()
                    report = await poll_all(poller)
                    wall = loop.time() - started
                    cpu = meter.cpu() - cpu0
                    label = "backfill" if n == 0 else str(n)
                    parsed = (
                        fetcher.parsed_feeds - parsed0[0],
                        fetcher.parsed_items - parsed0[1],
                    )
                    rounds.append(_round_figures(label, report, wall, cpu, farm, parsed))
                    rounds[-1]["cpu_main_s"] = meter.cpu_main() - main0
                    rounds[-1]["gc_s"] = gc_clock.seconds - gc0[0]
                    rounds[-1]["gc_full_collections"] = gc_clock.full - gc0[1]
                    rounds[-1]["rss_mb_after"] = meter.last_rss / 1e6
                    rounds[-1]["rss_mb_peak"] = meter.window_peak / 1e6
                    log.info("poll round %s: %s", label, rounds[-1])
                if config.profile:
                    # One more steady round under the profiler, outside the measured figures
                    # (cProfile slows the process down). Parse workers are not profiled.
                    await loop.run_in_executor(
                        None, lambda: farm_control(config.ports, "advance", share=config.share)
                    )
                    await store.make_all_due()
                    profiler = cProfile.Profile()
                    profiler.enable()
                    await poll_all(poller)
                    profiler.disable()
                    profiler.dump_stats(config.profile)
            peak_children = meter.peak_children
        peak_rss, peak_own_rss = meter.peak_rss, meter.peak_own_rss
    finally:
        await db.dispose()
    steady = [r for r in rounds if r["round"] != "backfill"]
    backfill = rounds[0] if rounds and rounds[0]["round"] == "backfill" else None
    walls = [r["wall_s"] for r in steady]
    feeds_polled = sum(r["feeds"] for r in steady)
    new_items = sum(r["new_items"] for r in steady)
    parsed_items = sum(r["parsed_items"] for r in steady)
    cpu_total = sum(r["cpu_s"] for r in steady)
    return {
        "feeds": len(urls),
        "parse_workers": config.parse_workers,
        "skip_seen_items": config.skip_seen_items,
        "storylines": config.storylines,
        "prefilled_entries": config.prefill,
        "concurrency": config.concurrency,
        "rounds": rounds,
        "steady_rounds": len(steady),
        "round_wall_p50_s": percentile(walls, 50),
        "round_wall_p95_s": percentile(walls, 95),
        "feeds_per_s": feeds_polled / sum(walls) if walls else 0.0,
        "new_items_per_s": new_items / sum(walls) if walls else 0.0,
        "cpu_s_per_round": cpu_total / len(steady) if steady else 0.0,
        # The product process alone (its event loop is where a round waits on the GIL).
        "cpu_main_s_per_round": (
            sum(r["cpu_main_s"] for r in steady) / len(steady) if steady else 0.0
        ),
        # Of the product process's CPU: the cyclic garbage collector (see usecases.heap).
        "gc_s_per_round": sum(r["gc_s"] for r in steady) / len(steady) if steady else 0.0,
        "cpu_s_per_1000_new_items": 1000 * cpu_total / new_items if new_items else None,
        "backfill_cpu_s_per_1000_items": (
            1000 * backfill["cpu_s"] / backfill["new_items"]
            if backfill and backfill["new_items"]
            else None
        ),
        "seeded_backfill": seeded,
        "cpu_s_per_1000_parsed_items": 1000 * cpu_total / parsed_items if parsed_items else None,
        "peak_rss_mb": peak_rss / 1e6,
        "peak_rss_main_mb": peak_own_rss / 1e6,
        "peak_processes": 1 + peak_children,
        "db_size_mb": _size_mb(config.db_path),
    }
