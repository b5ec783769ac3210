"""Issue 18: feed health reaches the team. A feed that turns failing, and one that recovers,
gets one notice each in the ops channel, however many polls fail in between.

Real parts: a feed server on 127.0.0.1 that fails and then recovers, the real poller into a
real SQLite file, the real discord.py client against the emulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller
from tests.discordbot.harness import ALERTS_CHANNEL, GENERAL_CHANNEL, harness
from tests.helpers import FeedServer, rss
from timeline.app.config import PollingSettings
from timeline.storage.models import Feed, FeedNotice
from timeline.usecases.polling import PollStore

SETTINGS = PollingSettings(
    allow_private=("127.0.0.1",), timeout_seconds=5.0, jitter=0.0, failing_after=3
)
OPS = GENERAL_CHANNEL


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(FetchSettings.from_settings(SETTINGS)) as f:
        yield f


async def poll(store: PollStore, fetcher: Fetcher, db: object, at: datetime) -> None:
    async with store.db.session() as s:
        for feed in (await s.scalars(select(Feed))).all():
            feed.next_check_at = at - timedelta(seconds=1)
    await Poller(store, fetcher).run_round(at)


async def test_one_notice_when_a_feed_turns_failing_and_one_when_it_recovers(
    tmp_path: Path, feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.bodies["/wire.xml"] = rss(("1", "First story", "text"))
    async with harness(tmp_path) as h:
        async with h.db.session() as s:
            s.add(Feed(name="Wire <@&1> **x**", url=feed_server.url("/wire.xml")))
        store = PollStore(h.db, SETTINGS)
        at = datetime.now(UTC)
        await poll(store, fetcher, h.db, at)  # ok
        feed_server.bodies["/wire.xml"] = b"<html>not a feed</html>"
        async with h.bot(ops_channel_id=OPS) as bot:
            for n in range(1, 6):  # five failures: failing after the third
                await poll(store, fetcher, h.db, at + timedelta(minutes=n))
                await bot.delivery.drain()
            failing = h.emu.channel_messages(OPS)
            assert len(failing) == 1
            embed = failing[0].payload["embeds"][0]
            assert embed["title"].startswith("Feed failing: Wire")
            assert "failed 3 times in a row" in embed["description"]
            assert failing[0].payload.get("mention_roles") in (None, [])
            assert "<@&1>" not in embed["description"]  # the feed's name cannot mention

            feed_server.bodies["/wire.xml"] = rss(("2", "Second story", "text"))
            for n in range(6, 9):  # recovered, then fine
                await poll(store, fetcher, h.db, at + timedelta(minutes=n))
                await bot.delivery.drain()
        messages = h.emu.channel_messages(OPS)
        assert [m.payload["embeds"][0]["title"].split(":")[0] for m in messages] == [
            "Feed failing",
            "Feed recovered",
        ]
        assert "after 5 failed polls" in messages[1].payload["embeds"][0]["description"]
        assert h.emu.channel_messages(ALERTS_CHANNEL) == []
        async with h.db.session() as s:
            rows = (await s.execute(select(FeedNotice.kind, FeedNotice.status))).all()
        assert [tuple(r) for r in rows] == [("failing", "sent"), ("recovered", "sent")]


async def test_without_an_ops_channel_notices_wait_and_nothing_is_posted(
    tmp_path: Path, feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.bodies["/wire.xml"] = b"<html>not a feed</html>"
    async with harness(tmp_path) as h:
        async with h.db.session() as s:
            s.add(Feed(name="Wire", url=feed_server.url("/wire.xml")))
        store = PollStore(h.db, SETTINGS)
        at = datetime.now(UTC)
        async with h.bot() as bot:
            for n in range(4):
                await poll(store, fetcher, h.db, at + timedelta(minutes=n))
                await bot.delivery.drain()
        assert h.emu.channel_messages(OPS) == []
        async with h.db.session() as s:
            rows = (await s.execute(select(FeedNotice.kind, FeedNotice.status))).all()
        # Kept for when an ops channel is configured: one notice for the one change.
        assert [tuple(r) for r in rows] == [("failing", "pending")]
