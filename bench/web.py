"""Web timeline server times: the first page and searches over a guild with many events.

    python -m bench.web                      # 100,000 events (one entry each), 200 requests
    python -m bench.web --events 1000000     # the 1 M search figure (slow to build)

Builds (or reuses) an SQLite store: N events of one guild, one entry each from four feeds,
two watches alerting on every tenth event, the full-text index synced. Then serves the real
web app (webui.app.make_app) on 127.0.0.1 and times each request inside the server (a
middleware around the app's own, so it is the handler's time, without the client's), for the
first page, a page deep in the cursor chain, searches (with filters, and one five pages down
its cursor chain), and prints the figures with the load average and one "target met" line per
target of the issue. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from timeline.usecases import events as event_service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from timeline.app.config import WebSettings
from timeline.domain.signed_links import sign_token
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade
from timeline.storage.search import sync_search_index
from webui.app import make_app

GUILD = 42
SECRET = b"bench-secret-bench-secret-bench-secret"
WORDS = (
    "nato communique china russia drone drones sanctions iran missile summit ceasefire election "
    "minister embassy export exports dual-use military civilian supply beijing moscow kyiv "
    "ukraine taiwan navy tariff oil gas pipeline nuclear satellite cyber bank inflation court"
).split()
FILLER = [f"w{i}" for i in range(5000)]
QUERIES = ("dual-use", "nato communique", '"export controls"', "drone OR drones", "w17 w23")
DEEP_QUERY, DEEP_PAGES = "drone OR drones", 5
# Searches with the page's filters: a narrow watch (5 % of events) and the oldest-first order.
FILTERED = (
    ("nato communique", {"watch": "nato"}),
    ("drone OR drones", {"order": "oldest"}),
)
# The targets (server time p95): the first page of 100,000 events; a search of 1 M.
FIRST_PAGE_TARGET_MS = 50
SEARCH_TARGET_MS = 150


def _text(rng: random.Random, n: int) -> str:
    return " ".join(
        rng.choice(WORDS) if rng.random() < 0.15 else rng.choice(FILLER) for _ in range(n)
    )


def populate(path: Path, events: int, seed: int) -> None:
    """Write `events` events with one entry each (and alerts on every tenth) into `path`."""
    upgrade(f"sqlite:///{path}")
    rng = random.Random(seed)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    cur = con.cursor()
    now = "2024-01-01 00:00:00"
    for i in range(1, 5):
        cur.execute(
            "INSERT INTO feeds (id, guild_id, name, url, tags, origin, enabled, next_check_at, "
            "error_count, status, backfilled, created_at) VALUES "
            "(?, ?, ?, ?, '[]', 'discord', 1, ?, 0, 'ok', 0, ?)",
            (i, GUILD, f"Wire {i}", f"https://wire{i}.example/rss", now, now),
        )
    for i, name in ((1, "dual-use"), (2, "nato")):
        cur.execute(
            "INSERT INTO watches (id, guild_id, name, query, channel_id, enabled, origin, "
            "created_at) VALUES (?, ?, ?, ?, 1, 1, 'discord', ?)",
            (i, GUILD, name, name, now),
        )
    start = datetime(2020, 1, 1, tzinfo=UTC)
    events_rows: list[tuple[int, int, str, str, str, str, str]] = []
    entries_rows: list[tuple[int, int, str, str, str, str, str, str]] = []
    alerts_rows: list[tuple[int, int, str]] = []

    def flush() -> None:
        cur.executemany(
            "INSERT INTO events (id, guild_id, title, link, occurred_at, manual, created_at, "
            "updated_at, storyline_detached) VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0)",
            events_rows,
        )
        cur.executemany(
            "INSERT INTO entries (feed_id, event_id, key, title, summary, link, tags, "
            "published_at, published_is_estimated, first_seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?, '[]', ?, 0, ?)",
            entries_rows,
        )
        cur.executemany(
            "INSERT INTO alerts (watch_id, event_id, channel_id, status, dirty, silent, "
            "matched_terms, attempts, created_at) VALUES (?, ?, 1, 'sent', 0, 0, '[]', 0, ?)",
            alerts_rows,
        )
        events_rows.clear()
        entries_rows.clear()
        alerts_rows.clear()

    for i in range(1, events + 1):
        at = (start + timedelta(seconds=i * 300 + rng.randint(0, 200))).strftime(
            "%Y-%m-%d %H:%M:%S.%f"
        )
        title = _text(rng, 10)
        link = f"https://wire{i % 4 + 1}.example/{i}"
        events_rows.append((i, GUILD, title, link, at, at, at))
        entries_rows.append((i % 4 + 1, i, f"k{i}", title, _text(rng, 40), link, at, at))
        if i % 10 == 0:
            alerts_rows.append((1 + (i // 10) % 2, i, at))
        if len(events_rows) == 20_000:
            flush()
    flush()
    con.commit()
    con.close()


def _next_link(html: str) -> str:
    """The path of the page's "more" link (the next cursor page)."""
    marker = 'id="more" rel="next" href="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)].replace("&amp;", "&")


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _targets(p95: dict[str, float], entries: int) -> None:
    """One line per target of the issue: met or not, with the figure it rests on."""
    for kind, figure in p95.items():
        if kind == "first page":
            limit, scale = FIRST_PAGE_TARGET_MS, f"{entries:,} events (target at 100,000)"
        elif kind.startswith("search "):
            limit, scale = SEARCH_TARGET_MS, f"{entries:,} entries (target at 1,000,000)"
        else:
            continue
        verdict = "met" if figure <= limit else "NOT met"
        print(f"target {kind}: p95 {figure:.1f} ms <= {limit} ms over {scale}: {verdict}")


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share + 0.5) - 1)]


async def measure(path: Path, requests: int, search_requests: int) -> None:  # noqa: C901 (one timed section per kind of request, in order)
    """Serve the app over `path` and print server times per kind of request."""
    db = Database(f"sqlite:///{path}")
    print(f"load average before: {_loadavg()}")
    try:
        t0 = time.perf_counter()
        async with db.session() as session:
            indexed = await sync_search_index(session, batch=5000)
            entries = (await session.execute(text("SELECT count(*) FROM entries"))).scalar_one()
        if indexed:
            print(f"indexed {indexed:,} entries in {time.perf_counter() - t0:.0f} s")
        times: dict[str, list[float]] = {}
        current: list[str] = ["?"]

        @web.middleware
        async def timer(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            start = time.perf_counter()
            try:
                return await handler(request)
            finally:
                times.setdefault(current[0], []).append(time.perf_counter() - start)

        app = make_app(db, WebSettings(enabled=True), SECRET)
        app.middlewares.insert(0, timer)
        token = sign_token(SECRET, GUILD, "bench", lifetime=timedelta(hours=1))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await client.get(f"/?token={token}")
            # Warm-up (templates compiled, caches filled), not counted.
            current[0] = "warm-up"
            for _ in range(5):
                await client.get("/")

            current[0] = "first page, dates not cached"
            for _ in range(max(5, requests // 10)):
                event_service._cached_dates.cache_clear()
                await (await client.get("/")).read()
            current[0] = "first page"
            for _ in range(requests):
                response = await client.get("/")
                assert response.status == 200, response.status
                await response.read()
            # 40 pages down the cursor chain (1,000 events in).
            path_ = "/"
            current[0] = "walk"
            for _ in range(40):
                path_ = _next_link(await (await client.get(path_)).text())
            current[0] = "page 41 (cursor)"
            for _ in range(requests):
                await (await client.get(path_)).read()
            for query in QUERIES:
                current[0] = f"search {query}"
                for _ in range(search_requests):
                    response = await client.get("/", params={"q": query})
                    assert response.status == 200, (query, response.status)
                    await response.read()
            for query, extra in FILTERED:
                current[0] = f"search {query}, " + ", ".join(f"{k} {v}" for k, v in extra.items())
                for _ in range(search_requests):
                    response = await client.get("/", params={"q": query, **extra})
                    assert response.status == 200, (query, extra, response.status)
                    await response.read()
            # A searched page deep in its cursor chain costs about what the first one does.
            current[0] = "walk"
            path_ = "/?" + urlencode({"q": DEEP_QUERY})
            for _ in range(DEEP_PAGES - 1):
                path_ = _next_link(await (await client.get(path_)).text())
            current[0] = f"search {DEEP_QUERY}, page {DEEP_PAGES}"
            for _ in range(search_requests):
                response = await client.get(path_)
                assert response.status == 200, response.status
                await response.read()
        print(f"{'request':<38} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        p95: dict[str, float] = {}
        for kind, values in times.items():
            if kind in ("?", "warm-up", "walk"):
                continue
            p95[kind] = _percentile(values, 0.95) * 1000
            print(
                f"{kind:<38} {len(values):>5} {statistics.median(values) * 1000:8.1f} "
                f"{p95[kind]:8.1f} {max(values) * 1000:8.1f}"
            )
        print(f"load average after: {_loadavg()}")
        _targets(p95, entries)
    finally:
        await db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Build the store if needed, then print the web server's times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--search-requests", type=int, help="requests per search shape (default: --requests)"
    )
    parser.add_argument("--db", help="store path (default /tmp/bench_web_EVENTS.db, reused)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    path = Path(args.db or f"/tmp/bench_web_{args.events}.db")
    if not path.exists():
        t0 = time.perf_counter()
        populate(path, args.events, args.seed)
        print(f"stored {args.events:,} events in {time.perf_counter() - t0:.0f} s at {path}")
    print(f"database size: {os.path.getsize(path) / 1e6:,.0f} MB")
    asyncio.run(measure(path, args.requests, args.search_requests or args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
