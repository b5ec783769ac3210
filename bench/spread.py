"""Does the timeline depend on poll timing? `python -m bench.spread`.

150 outlets over real HTTP on 127.0.0.1 retell the labelled events of
`tests/domain/storylines/` (each outlet carries 8 of them, in its own words: its name in the title,
an extra sentence, within hours of each other), each on its labelled day (with `--dense`,
all within two days: the events of a storyline then fall in one clustering window). Servers
answer after a random delay (network jitter), so fetches finish in a different order on each
run. The same items go into a fresh SQLite file three ways:

- one round with every item;
- two rounds: the older half of the items first, then all of them;
- a killed round: the round is cancelled after half the feeds are recorded, then run again.

Each way runs `--repeats` times with different jitter. Printed: events per run, and the spread
(max - min) / min over all runs. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from aiohttp import web
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feeds.fetch import Fetcher, FetchSettings  # noqa: E402
from feeds.rounds import Poller  # noqa: E402
from tests.domain.storylines.labelled import load  # noqa: E402
from timeline.app.config import PollingSettings  # noqa: E402
from timeline.storage.engine import Database  # noqa: E402
from timeline.storage.migrate import upgrade_async  # noqa: E402
from timeline.storage.models import Event, Feed  # noqa: E402
from timeline.usecases.polling import PollStore  # noqa: E402

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
SETTINGS = PollingSettings(allow_private=("127.0.0.1",), timeout_seconds=10.0, jitter=0.0)
EXTRA = (
    "{outlet} reported, citing officials familiar with the matter.",
    "The details were confirmed to {outlet} on condition of anonymity.",
    "More to follow, {outlet} said.",
    "",
)
TITLE_FORMS = ("{title}", "{title} - {outlet}", "UPDATE 1-{title}", "{outlet}: {title}")

Item = tuple[str, str, str, datetime]  # guid, title, summary, published


def corpus(feeds: int, per_feed: int, seed: int = 11, dense: bool = False) -> dict[str, list[Item]]:
    """Outlet name -> its items, deterministically from `seed`."""
    rng = random.Random(seed)
    events = load("dev") + load("test")
    if dense:
        # The hard case: every event within the last two days, 20 minutes apart, so the
        # events of one storyline all fall within the clustering window of each other.
        when = {e.id: NOW - timedelta(minutes=20 * (i + 1)) for i, e in enumerate(events)}
    else:
        # Each event on its labelled day (they span months; the events of one storyline are
        # days or weeks apart), moved so that the last one is a day before the rounds.
        shift = NOW - timedelta(days=1) - max(e.at for e in events)
        when = {e.id: e.at + shift + timedelta(hours=9) for e in events}
    out: dict[str, list[Item]] = {}
    for n in range(feeds):
        outlet = f"Outlet {n:03d}"
        items = []
        for e in rng.sample(events, per_feed):
            title = rng.choice(TITLE_FORMS).format(title=e.title, outlet=outlet)
            summary = f"{e.summary} {rng.choice(EXTRA).format(outlet=outlet)}".strip()
            published = when[e.id] + timedelta(minutes=rng.randint(0, 180))
            items.append((f"{n}-{e.id}", title, summary, published))
        out[outlet] = sorted(items, key=lambda i: i[3], reverse=True)
    return out


def document(outlet: str, items: list[Item]) -> bytes:
    body = "".join(
        f"<item><guid isPermaLink='false'>{guid}</guid><title>{escape(title)}</title>"
        f"<link>https://{outlet.replace(' ', '').lower()}.example/{guid}</link>"
        f"<description>{escape(summary)}</description>"
        f"<pubDate>{format_datetime(published)}</pubDate></item>"
        for guid, title, summary, published in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{escape(outlet)}</title><link>https://example.com/</link>"
        f"<description>d</description>{body}</channel></rss>"
    ).encode()


class Farm:
    """The outlets' servers: one aiohttp app, each answer after a random delay."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.rng = random.Random(0)
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.rng.uniform(0.0, 0.05))  # network jitter (a bench, not a test)
        body = self.bodies.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/rss+xml")


async def scenario(
    way: str, farm: Farm, fetcher: Fetcher, items: dict[str, list[Item]], jitter_seed: int
) -> dict[str, float]:
    farm.rng = random.Random(jitter_seed)
    dates = sorted(i[3] for its in items.values() for i in its)
    midpoint = dates[len(dates) // 2]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'spread.db'}"
        await upgrade_async(url)
        db = Database(url)
        try:
            async with db.session() as s:
                for n, outlet in enumerate(items):
                    s.add(Feed(name=outlet, url=f"http://127.0.0.1:{farm.port}/{n}.xml"))

            def serve(cut: datetime | None) -> None:
                for n, (outlet, its) in enumerate(items.items()):
                    shown = [i for i in its if cut is None or i[3] < cut]
                    farm.bodies[f"/{n}.xml"] = document(outlet, shown)

            async def round_(at: datetime, stop_after: int | None = None) -> None:
                await _make_due(db)
                store = PollStore(db, SETTINGS)
                done = 0
                task: asyncio.Task[object] | None = None

                async def counted(_: object) -> None:
                    nonlocal done
                    done += 1
                    if stop_after is not None and done == stop_after and task is not None:
                        task.cancel()

                poller = Poller(store, fetcher, concurrency=20, on_outcome=counted)
                task = asyncio.ensure_future(poller.run_round(at))
                try:
                    await task
                except asyncio.CancelledError:
                    pass

            started = time.perf_counter()
            if way == "one round":
                serve(None)
                await round_(NOW)
            elif way == "two rounds":
                serve(midpoint)
                await round_(NOW - timedelta(minutes=30))
                serve(None)
                await round_(NOW)
            else:  # killed round
                serve(None)
                await round_(NOW, stop_after=len(items) // 2)
                await round_(NOW + timedelta(minutes=1))
            seconds = time.perf_counter() - started
            async with db.session() as s:
                events = int(await s.scalar(select(func.count()).select_from(Event)) or 0)
        finally:
            await db.dispose()
    return {"events": events, "seconds": round(seconds, 2)}


async def _make_due(db: Database) -> None:
    async with db.session() as s:
        for f in (await s.scalars(select(Feed))).all():
            f.next_check_at = datetime(2000, 1, 1, tzinfo=UTC)
            f.lease_owner = None
            f.lease_until = None


async def run(feeds: int, per_feed: int, repeats: int, dense: bool = False) -> dict[str, object]:
    items = corpus(feeds, per_feed, dense=dense)
    farm = Farm()
    app = web.Application()
    app.router.add_get("/{name}", farm.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert isinstance(site._server, asyncio.Server)
    farm.port = site._server.sockets[0].getsockname()[1]
    results: dict[str, list[dict[str, float]]] = {}
    try:
        settings = FetchSettings(timeout_seconds=10.0, allow_private=SETTINGS.allow_private)
        async with Fetcher(settings) as fetcher:
            for way in ("one round", "two rounds", "killed round"):
                results[way] = [
                    await scenario(way, farm, fetcher, items, seed) for seed in range(repeats)
                ]
    finally:
        await runner.cleanup()
    counts = [r["events"] for runs in results.values() for r in runs]
    return {
        "corpus": "dense" if dense else "labelled days",
        "feeds": feeds,
        "items": sum(len(v) for v in items.values()),
        "stories": len(load("dev") + load("test")),
        "events": {way: [r["events"] for r in runs] for way, runs in results.items()},
        "spread_pct": round(100 * (max(counts) - min(counts)) / min(counts), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--feeds", type=int, default=150)
    parser.add_argument("--per-feed", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dense", action="store_true", help="all events within two days (the hard case)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args.feeds, args.per_feed, args.repeats, args.dense))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
