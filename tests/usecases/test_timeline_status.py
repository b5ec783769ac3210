"""Timeline listing (order, window, paging, watch and source filters, guild isolation); status."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.usecases.factories import NOW, make_feed, make_story
from timeline.domain.errors import BadQuery, NotFound
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Watch
from timeline.usecases.status import status
from timeline.usecases.timeline import list_timeline


async def _seed(sdb: Database) -> dict[str, int]:
    async with sdb.session() as s:
        shared = await make_feed(s, "Reuters", "https://www.reuters.example/world")
        g1 = await make_feed(s, "Guild1 Blog", "https://blog.one.example/rss", 1, "discord")
        g2 = await make_feed(s, "Guild2 Blog", "https://blog.two.example/rss", 2, "discord")
        ids = {}
        for h in range(1, 6):
            ids[f"shared{h}"] = (await make_story(s, [shared], f"Shared {h}", hours_ago=h * 10)).id
        ids["g1"] = (await make_story(s, [g1], "Only guild one", hours_ago=15)).id
        ids["g2"] = (await make_story(s, [g2], "Only guild two", hours_ago=15)).id
        watch = Watch(guild_id=1, name="Mine", query="x", channel_id=5)
        other = Watch(guild_id=2, name="Theirs", query="x", channel_id=6)
        s.add_all([watch, other])
        await s.flush()
        s.add(Alert(watch_id=watch.id, event_id=ids["shared2"], channel_id=5, status="sent"))
        s.add(
            Alert(
                watch_id=other.id,
                event_id=ids["shared3"],
                channel_id=6,
                status="failed",
                last_error="Missing Access",
            )
        )
        s.add(Alert(watch_id=watch.id, event_id=ids["g1"], channel_id=5, status="pending"))
    return ids


async def test_timeline_is_newest_first_and_paged(sdb: Database) -> None:
    ids = await _seed(sdb)
    async with sdb.session() as s:
        page = await list_timeline(s, 1, limit=3)
        assert page.total == 6
        assert [e.title for e in page.events] == ["Shared 1", "Only guild one", "Shared 2"]
        assert page.events[2].watches == ["Mine"]
        page2 = await list_timeline(s, 1, limit=3, offset=3)
        assert [e.title for e in page2.events] == ["Shared 3", "Shared 4", "Shared 5"]
        assert (await list_timeline(s, 1, limit=3, offset=30)).events == []
    assert ids


async def test_each_guild_sees_its_own_and_the_shared_events_only(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        one = {e.title for e in (await list_timeline(s, 1, limit=50)).events}
        two = {e.title for e in (await list_timeline(s, 2, limit=50)).events}
        zero = {e.title for e in (await list_timeline(s, 0, limit=50)).events}
        # Guild 2's watch alerted on a shared event: guild 1 must not see that watch name.
        shared3 = next(
            e for e in (await list_timeline(s, 1, limit=50)).events if e.title == "Shared 3"
        )
    assert "Only guild two" not in one and "Only guild one" in one
    assert "Only guild one" not in two and "Only guild two" in two
    assert zero == {f"Shared {h}" for h in range(1, 6)}
    assert shared3.watches == []


async def test_since_until_watch_and_source_filters(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        window = await list_timeline(
            s, 1, since=NOW - timedelta(hours=35), until=NOW - timedelta(hours=12)
        )
        assert [e.title for e in window.events] == ["Only guild one", "Shared 2", "Shared 3"]
        watched = await list_timeline(s, 1, watch="mine")
        assert [e.title for e in watched.events] == ["Only guild one", "Shared 2"]
        by_name = await list_timeline(s, 1, source="reuters")
        by_domain = await list_timeline(s, 1, source="reuters.example")
        assert by_name.total == by_domain.total == 5
        with pytest.raises(NotFound):
            await list_timeline(s, 1, watch="Theirs")
        with pytest.raises(NotFound):
            await list_timeline(s, 1, source="Guild2 Blog")
        with pytest.raises(BadQuery):
            await list_timeline(s, 1, since=NOW, until=NOW - timedelta(days=1))


async def test_status_summarises_feeds_and_alerts_per_guild(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        feed = await make_feed(s, "Broken", "https://broken.example/rss")
        feed.status, feed.last_error, feed.error_count = "failing", "HTTP 500", 7
        feed.last_checked_at = NOW - timedelta(minutes=3)
    async with sdb.session() as s:
        one = await status(s, 1, "1.2.3")
        two = await status(s, 2, "1.2.3")
    assert one.version == "1.2.3"
    assert one.feeds_total == 3 and one.feeds_ok == 0
    assert [(f.name, f.last_error) for f in one.feeds_failing] == [("Broken", "HTTP 500")]
    assert one.last_poll_at == NOW - timedelta(minutes=3)
    assert one.next_poll_at is not None
    assert one.alerts_pending == 1 and one.alerts_failed == []
    assert two.alerts_pending == 0
    assert [(a.watch, a.reason) for a in two.alerts_failed] == [("Theirs", "Missing Access")]
