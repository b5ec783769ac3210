"""Issue 19.5: a feed that starts (or stops) sharing one guid between items stores no story twice.

Real HTTP server on 127.0.0.1, real fetcher, parser and poller, real SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from feeds.fetch import Fetcher, FetchSettings
from feeds.parse import parse_feed
from feeds.rounds import Poller
from tests.helpers import FeedServer
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Feed
from timeline.usecases.polling import PollStore

SETTINGS = PollingSettings(
    allow_private=("127.0.0.1",), timeout_seconds=2.0, max_body_bytes=200_000, jitter=0.0
)
GUID = "https://bulletin.example.com/"
PORT = ("Port traffic report for June", "https://bulletin.example.com/port-june")
GRAIN = ("Grain exports rise", "https://bulletin.example.com/grain")
STRIKE = ("Dock strike called off", "https://bulletin.example.com/strike")


def bulletin(*items: tuple[str, str]) -> bytes:
    """An RSS document whose every item carries the same guid (the site's home page)."""
    parts = "".join(
        f"<item><guid>{GUID}</guid><title>{title}</title><link>{link}</link>"
        "<description>Bulletin.</description>"
        "<pubDate>Tue, 08 Jul 2025 09:00:00 GMT</pubDate></item>"
        for title, link in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        "<title>Bulletin</title><link>https://bulletin.example.com/</link>"
        f"<description>d</description>{parts}</channel></rss>"
    ).encode()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    settings = FetchSettings(
        timeout_seconds=SETTINGS.timeout_seconds,
        max_body_bytes=SETTINGS.max_body_bytes,
        allow_private=SETTINGS.allow_private,
    )
    async with Fetcher(settings) as f:
        yield f


async def _round(db: Database, poller: Poller) -> None:
    async with db.session() as s:
        for feed in (await s.scalars(select(Feed))).all():
            feed.next_check_at = datetime.now(UTC) - timedelta(seconds=1)
    report = await poller.run_round()
    assert [o.outcome for o in report.outcomes] == ["ok"]


async def _titles(db: Database) -> list[str]:
    async with db.session() as s:
        return sorted((await s.scalars(select(Entry.title))).all())


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # The scenario: one item, then three items sharing its guid.
        ((PORT,), (PORT, GRAIN, STRIKE)),
        # The reverse: three items sharing a guid, then only one of them, alone.
        ((PORT, GRAIN, STRIKE), (GRAIN,)),
    ],
    ids=["starts-sharing", "stops-sharing"],
)
async def test_item_stored_once_however_later_documents_share_its_guid(
    db: Database,
    fetcher: Fetcher,
    feed_server: FeedServer,
    first: tuple[tuple[str, str], ...],
    second: tuple[tuple[str, str], ...],
) -> None:
    async with db.session() as s:
        s.add(Feed(name="Bulletin", url=feed_server.url("/bulletin.xml")))
    poller = Poller(PollStore(db, SETTINGS), fetcher, concurrency=2)
    feed_server.bodies["/bulletin.xml"] = bulletin(*first)
    await _round(db, poller)
    feed_server.bodies["/bulletin.xml"] = bulletin(*second)
    await _round(db, poller)
    # And once more as the first document: still nothing new. The new stories under the
    # stored guid (GRAIN, STRIKE) were stored: only the same story is recognised.
    feed_server.bodies["/bulletin.xml"] = bulletin(*first)
    await _round(db, poller)
    wanted = sorted({title for title, _ in first + second})
    assert await _titles(db) == wanted


def test_parser_names_the_other_form_of_the_key() -> None:
    now = datetime(2025, 7, 10, tzinfo=UTC)
    alone = parse_feed(bulletin(PORT), {}, GUID, now).items
    shared = parse_feed(bulletin(PORT, GRAIN), {}, GUID, now).items
    assert alone[0].key == GUID
    assert shared[0].key != GUID and shared[0].same_as == (GUID,)
    assert alone[0].same_as == (shared[0].key,)
