"""Issue 19.3: within a round, items are ingested in the feeds' claim order, not in the order
their fetches happen to finish, so which event a story joins does not depend on timing.

Two outlets carry the same story. The first-claimed outlet's server answers last (its fetch
is held until the other's has returned): its item must still be ingested first, create the
event, and the other's join it. Real HTTP on 127.0.0.1, a real SQLite file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller
from feeds.types import FetchResult, FetchState
from tests.helpers import FeedServer, rss
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Event, Feed, FetchLog
from timeline.usecases.polling import PollStore

SETTINGS = PollingSettings(
    allow_private=("127.0.0.1",), timeout_seconds=5.0, jitter=0.0, alert_on_first_poll=True
)
TITLE = "Dockworkers strike halts container traffic at the Port of Rotterdam"
TEXT = (
    "Dockworkers at the Port of Rotterdam walked out on Monday, halting container traffic at "
    "Europe's largest port as unions and terminal operators failed to agree on pay."
)


class HeldFetcher:
    """The real fetcher, except that the fetch of `held_url` returns only after every other
    fetch of the round has returned (the slow server of a real round)."""

    def __init__(self, real: Fetcher, held_url: str, others: int) -> None:
        self.real = real
        self.held_url = held_url
        self.others = others
        self.returned = 0
        self.released = asyncio.Event()

    async def fetch(self, state: FetchState) -> FetchResult:
        result = await self.real.fetch(state)
        if state.url == self.held_url:
            await self.released.wait()
        else:
            self.returned += 1
            if self.returned == self.others:
                self.released.set()
        return result


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    settings = FetchSettings(timeout_seconds=5.0, allow_private=SETTINGS.allow_private)
    async with Fetcher(settings) as f:
        yield f


async def test_the_first_claimed_feed_is_ingested_first_whatever_answers_first(
    db: Database, feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.bodies["/slow.xml"] = rss(("s1", f"{TITLE} (Slow Wire)", TEXT))
    feed_server.bodies["/fast.xml"] = rss(("f1", f"{TITLE} (Fast Wire)", TEXT))
    feed_server.bodies["/down.xml"] = b"not a feed"
    due = datetime(2000, 1, 1, tzinfo=UTC)
    async with db.session() as s:
        # Claim order is due time, then id: slow first, then a failing feed, then fast.
        s.add(Feed(name="Slow Wire", url=feed_server.url("/slow.xml"), next_check_at=due))
        s.add(Feed(name="Down", url=feed_server.url("/down.xml"), next_check_at=due))
        s.add(Feed(name="Fast Wire", url=feed_server.url("/fast.xml"), next_check_at=due))
    held = HeldFetcher(fetcher, feed_server.url("/slow.xml"), others=2)
    report = await Poller(PollStore(db, SETTINGS), held).run_round(
        datetime.now(UTC) + timedelta(seconds=1)
    )
    assert len(report.outcomes) == 3
    async with db.session() as s:
        entries = dict((await s.execute(select(Entry.key, Entry.id))).tuples().all())
        events = (await s.execute(select(Event.id, Event.title))).all()
        logged = (await s.scalars(select(FetchLog.outcome))).all()
    # Slow Wire's item went in first although its fetch returned last ...
    assert entries["s1"] < entries["f1"]
    # ... so it made the event, and Fast Wire's joined it: one event, titled by Slow Wire.
    assert [title for _, title in events] == [f"{TITLE} (Slow Wire)"]
    # The failing feed, out of turn, was recorded as usual.
    assert sorted(logged) == ["error", "ok", "ok"]
