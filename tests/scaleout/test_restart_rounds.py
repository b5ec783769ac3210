"""Issue 19.2: what ingest clusters does not depend on whether the process restarted.

Five outlets carry one story whose published date is weeks older than the clustering window
(an archive, a wrong date in the feed, a backlog after downtime). Two of them have it in the
first round, the other three in the second. The rounds run over real HTTP into a real SQLite
file, and into real PostgreSQL with two pollers sharing the feeds, once in one process and
once with every poller restarted (new stores, empty in-memory indexes) between the rounds.
Events, sources and alerts must come out the same, row for row.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import select

from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller
from tests.helpers import FeedServer
from tests.scaleout.conftest import make_pg_database
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Alert, Entry, Event, Feed, Watch
from timeline.usecases.polling import PollStore

SETTINGS = PollingSettings(
    allow_private=("127.0.0.1",), timeout_seconds=5.0, jitter=0.0, alert_on_first_poll=True
)
NOW = datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
# Three weeks before the rounds: far outside the 72-hour clustering window.
PUBLISHED = NOW - timedelta(days=21)
OUTLETS = ("alpha", "bravo", "charlie", "delta", "echo")
FIRST_ROUND = {"alpha", "bravo"}

STORY_TITLE = "Dockworkers strike halts container traffic at the Port of Rotterdam"
STORY_TEXT = (
    "Dockworkers at the Port of Rotterdam walked out on Monday, halting container traffic at "
    "Europe's largest port as unions and terminal operators failed to agree on automation "
    "and pay. Ships queued outside the Maasvlakte terminals, and the port authority said "
    "the strike would last at least 48 hours."
)


def document(outlet: str, *, with_story: bool) -> bytes:
    items = [
        (
            f"{outlet}-local",
            f"{outlet.title()} city council approves new cycling lanes",
            f"The {outlet} council voted for {len(outlet)} kilometres of protected lanes.",
            NOW - timedelta(hours=2),
        )
    ]
    if with_story:
        items.append((f"{outlet}-port", f"{STORY_TITLE} ({outlet.title()})", STORY_TEXT, PUBLISHED))
    body = "".join(
        f"<item><guid isPermaLink='false'>{guid}</guid><title>{escape(title)}</title>"
        f"<link>https://{outlet}.example/{guid}</link>"
        f"<description>{escape(text)}</description>"
        f"<pubDate>{format_datetime(when)}</pubDate></item>"
        for guid, title, text, when in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{outlet}</title><link>https://{outlet}.example/</link><description>d"
        f"</description>{body}</channel></rss>"
    ).encode()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    settings = FetchSettings(timeout_seconds=5.0, allow_private=SETTINGS.allow_private)
    async with Fetcher(settings) as f:
        yield f


@pytest.fixture
def pg_urls(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Two fresh PostgreSQL databases: one for the run without a restart, one with."""
    gens = [
        make_pg_database(f"tb_restart_{n}_{os.getpid()}_{request.node.name[-12:].strip('[]-')}")
        for n in range(2)
    ]
    urls = [next(g) for g in gens]
    try:
        yield urls
    finally:
        for g in gens:
            next(g, None)


async def due(db: Database) -> None:
    async with db.session() as s:
        for f in (await s.scalars(select(Feed))).all():
            f.next_check_at = datetime(2000, 1, 1, tzinfo=UTC)


async def run_rounds(
    url: str, server: FeedServer, fetcher: Fetcher, *, restart: bool, pollers: int
) -> dict[str, object]:
    """Two rounds an hour apart; `pollers` stores share the feeds (each leases what it polls)."""
    db = Database(url)
    try:
        async with db.session() as s:
            for outlet in OUTLETS:
                s.add(Feed(name=outlet, url=server.url(f"/{outlet}.xml")))
            s.add(Watch(name="port strike", query="Rotterdam strike", channel_id=1001))
        await due(db)
        stores = [PollStore(db, SETTINGS, owner=f"poller-{n}") for n in range(pollers)]
        for round_no in (1, 2):
            for outlet in OUTLETS:
                server.bodies[f"/{outlet}.xml"] = document(
                    outlet, with_story=round_no == 2 or outlet in FIRST_ROUND
                )
            if restart and round_no == 2:
                # New processes: empty event indexes, rebuilt from the database.
                stores = [PollStore(db, SETTINGS, owner=f"poller-{n}-b") for n in range(pollers)]
            now = NOW + timedelta(hours=round_no - 1)
            # The pollers take the feeds in turns, one feed a turn: which poller stores which
            # story alternates, and every store must see the others' entries.
            for turn in range(len(OUTLETS)):
                store = stores[turn % pollers]
                await Poller(store, fetcher, concurrency=1, batch=1).run_round(now)
            await due(db)
        return await snapshot(db)
    finally:
        await db.dispose()


async def snapshot(db: Database) -> dict[str, object]:
    """Events as the sets of (feed, guid) they hold; alerts as (watch, that set)."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Entry.event_id, Feed.name, Entry.key).join(Feed, Feed.id == Entry.feed_id)
            )
        ).all()
        by_event: dict[int, set[str]] = {}
        for event_id, feed, key in rows:
            by_event.setdefault(event_id, set()).add(f"{feed}:{key}")
        alerts = (
            await s.execute(
                select(Watch.name, Alert.event_id).join(Watch, Watch.id == Alert.watch_id)
            )
        ).all()
        events = (await s.execute(select(Event.id, Event.title))).all()
    return {
        "events": sorted(sorted(keys) for keys in by_event.values()),
        "event count": len(events),
        "alerts": sorted((watch, sorted(by_event[event_id])) for watch, event_id in alerts),
    }


async def test_a_restart_between_rounds_changes_nothing_sqlite(
    tmp_path: Path, feed_server: FeedServer, fetcher: Fetcher
) -> None:
    results = []
    for restart in (False, True):
        url = f"sqlite:///{tmp_path / f'restart-{restart}.db'}"
        await upgrade_async(url)
        results.append(await run_rounds(url, feed_server, fetcher, restart=restart, pollers=1))
    live, restarted = results
    port = [keys for keys in live["events"] if any(k.endswith("-port") for k in keys)]  # type: ignore[attr-defined]
    # The old-dated story is one event with its five sources, and one alert ...
    assert port == [sorted(f"{o}:{o}-port" for o in OUTLETS)]
    assert live["alerts"] == [("port strike", port[0])]
    # ... whether or not the process restarted in between.
    assert restarted == live


async def test_a_restart_between_rounds_changes_nothing_postgresql_two_pollers(
    pg_urls: list[str], feed_server: FeedServer, fetcher: Fetcher
) -> None:
    live = await run_rounds(pg_urls[0], feed_server, fetcher, restart=False, pollers=2)
    restarted = await run_rounds(pg_urls[1], feed_server, fetcher, restart=True, pollers=2)
    port = [keys for keys in live["events"] if any(k.endswith("-port") for k in keys)]  # type: ignore[attr-defined]
    assert port == [sorted(f"{o}:{o}-port" for o in OUTLETS)]
    assert live["alerts"] == [("port strike", port[0])]
    assert restarted == live


STORY_Y_TITLE = "Chile's copper output falls as drought cuts water to the Escondida mine"
STORY_Y_TEXT = (
    "Copper production at Escondida, the world's largest copper mine, fell sharply in "
    "February as a drought in northern Chile cut the water available for processing ore, "
    "operator BHP said, adding that output would recover once desalination capacity expands."
)
STORY_Z_TITLE = "Kenya's central bank holds its benchmark rate as inflation eases"
STORY_Z_TEXT = (
    "The Central Bank of Kenya left its policy rate unchanged at its March meeting, saying "
    "inflation had eased for a third month and the shilling had stabilised against the dollar."
)


def one_story(outlet: str, guid: str, title: str, text: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{outlet}</title><link>https://{outlet}.example/</link><description>d"
        f"</description><item><guid isPermaLink='false'>{guid}</guid>"
        f"<title>{escape(title)}</title><link>https://{outlet}.example/{guid}</link>"
        f"<description>{escape(text)}</description>"
        f"<pubDate>{format_datetime(NOW - timedelta(hours=1))}</pubDate></item></channel></rss>"
    ).encode()


async def make_due(db: Database, name: str) -> None:
    async with db.session() as s:
        feed = (await s.scalars(select(Feed).where(Feed.name == name))).one()
        feed.next_check_at = datetime(2000, 1, 1, tzinfo=UTC)


async def test_a_poller_sees_what_another_commits_later_in_the_same_round(
    pg_urls: list[str], feed_server: FeedServer, fetcher: Fetcher
) -> None:
    """Poller B reads poller A's entries while A's round is still committing: the entries A
    commits afterwards, stamped with the same round time, still reach B's index."""
    db = Database(pg_urls[0])
    bodies = {
        "alpha": one_story("alpha", "a1", STORY_TITLE, STORY_TEXT),
        "bravo": one_story("bravo", "b1", STORY_Y_TITLE, STORY_Y_TEXT),
        "charlie": one_story("charlie", "c1", STORY_Y_TITLE + " (update)", STORY_Y_TEXT),
        "delta": one_story("delta", "d1", STORY_Z_TITLE, STORY_Z_TEXT),
    }
    try:
        async with db.session() as s:
            for outlet, body in bodies.items():
                feed_server.bodies[f"/{outlet}.xml"] = body
                s.add(
                    Feed(
                        name=outlet,
                        url=feed_server.url(f"/{outlet}.xml"),
                        next_check_at=datetime(2100, 1, 1, tzinfo=UTC),
                    )
                )
        a = PollStore(db, SETTINGS, owner="poller-a")
        b = PollStore(db, SETTINGS, owner="poller-b")
        round_a = NOW  # poller A's round started here; every entry it stores carries it
        await make_due(db, "alpha")
        await Poller(a, fetcher, batch=1).run_round(round_a)
        # B starts a round meanwhile and reads alpha's entry (its watermark is now round_a).
        await make_due(db, "delta")
        await Poller(b, fetcher, batch=1).run_round(round_a + timedelta(seconds=30))
        # A's round goes on: bravo is committed after B's read, stamped round_a.
        await make_due(db, "bravo")
        await Poller(a, fetcher, batch=1).run_round(round_a)
        # B's next round: charlie retells bravo's story and must join bravo's event.
        await make_due(db, "charlie")
        await Poller(b, fetcher, batch=1).run_round(round_a + timedelta(minutes=1))
        async with db.session() as s:
            rows = dict(
                (
                    await s.execute(
                        select(Entry.key, Entry.event_id).where(Entry.key.in_(["b1", "c1"]))
                    )
                )
                .tuples()
                .all()
            )
    finally:
        await db.dispose()
    assert rows["b1"] == rows["c1"]
