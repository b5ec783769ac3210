"""Config sync keeps the record: renamed watches keep their alerts, retired watches stay quiet.

Real HTTP feed server on 127.0.0.1, real fetcher and poller, real SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller
from tests.helpers import FeedServer, rss
from timeline.app.config import FeedConfig, PollingSettings, Settings, WatchConfig
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Feed, Watch
from timeline.usecases.config_io import ConfigRetiresTooMuch, export_config_toml, sync_config
from timeline.usecases.polling import PollStore

NATO = "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine"
SETTINGS = PollingSettings(
    allow_private=("127.0.0.1",),
    timeout_seconds=2.0,
    max_body_bytes=200_000,
    jitter=0.0,
    alert_on_first_poll=True,
)


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    settings = FetchSettings(
        timeout_seconds=SETTINGS.timeout_seconds,
        max_body_bytes=SETTINGS.max_body_bytes,
        allow_private=SETTINGS.allow_private,
    )
    async with Fetcher(settings) as f:
        yield f


async def sync(db: Database, settings: Settings, *, accept: bool = True) -> None:
    async with db.session() as s:
        await sync_config(s, settings, accept=accept)
        for feed in (await s.scalars(select(Feed))).all():
            feed.next_check_at = datetime.now(UTC) - timedelta(seconds=1)


async def alerts(db: Database) -> list[tuple[int, int]]:
    async with db.session() as s:
        return [(a.watch_id, a.event_id) for a in (await s.scalars(select(Alert))).all()]


async def test_renamed_watch_keeps_its_id_and_alerts_and_does_not_alert_again(
    db: Database, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    story = ("nato-1", NATO, "dual-use materials")
    feed_server.bodies["/a.xml"] = rss(story)
    feed_server.bodies["/b.xml"] = rss(("y", "Else", "else"))
    feeds = (
        FeedConfig("A", feed_server.url("/a.xml")),
        FeedConfig("B", feed_server.url("/b.xml")),
    )
    poller = Poller(PollStore(db, SETTINGS), fetcher, concurrency=2)
    await sync(db, Settings(feeds=feeds, watches=(WatchConfig("nato", "NATO communique", 111),)))
    await poller.run_round()
    first = await alerts(db)
    assert len(first) == 1

    # Renamed in the file: same query, same channel.
    renamed = Settings(feeds=feeds, watches=(WatchConfig("NATO summit", "NATO communique", 111),))
    async with db.session() as s:
        report = await sync_config(s, renamed)
    assert report.updated == ["watch:NATO summit"] and report.retired == report.added == []
    async with db.session() as s:
        watch = (await s.scalars(select(Watch))).one()
    assert (watch.id, watch.name, watch.retired_at) == (first[0][0], "NATO summit", None)
    assert await alerts(db) == first

    # A second outlet carries the story: it joins the event, which the watch already alerted.
    feed_server.bodies["/b.xml"] = rss(story, ("y", "Else", "else"))
    await sync(db, renamed)
    report_round = await poller.run_round()
    assert [a for o in report_round.outcomes for a in o.alerts] == []
    assert await alerts(db) == first


async def test_retired_watch_does_not_alert_and_revived_one_does(
    db: Database, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.bodies["/a.xml"] = rss(("old", "Quiet", "nothing"))
    feeds = (FeedConfig("A", feed_server.url("/a.xml")),)
    nato = WatchConfig("nato", "NATO communique", 111)
    other = WatchConfig("other", "fireworks", 112)
    poller = Poller(PollStore(db, SETTINGS), fetcher, concurrency=2)
    await sync(db, Settings(feeds=feeds, watches=(nato, other)))
    await poller.run_round()
    await sync(db, Settings(feeds=feeds, watches=(other,)))  # nato leaves the file
    feed_server.bodies["/a.xml"] = rss(("new", NATO, "s"), ("old", "Quiet", "nothing"))
    await poller.run_round()
    assert await alerts(db) == []
    async with db.session() as s:
        retired = (await s.scalars(select(Watch).where(Watch.name == "nato"))).one()
    assert retired.retired_at is not None
    async with db.session() as s:
        exported = await export_config_toml(s, 0)
    assert '"other"' in exported and '"nato"' not in exported  # exporting does not revive it

    await sync(db, Settings(feeds=feeds, watches=(nato, other)))
    feed_server.bodies["/a.xml"] = rss(("newer", NATO + " again", "s"))
    await poller.run_round()
    assert [w for w, _ in await alerts(db)] == [retired.id]


async def test_valve_refuses_a_sync_that_retires_most_feeds_and_changes_nothing(
    db: Database,
) -> None:
    three = tuple(FeedConfig(f"F{i}", f"https://f{i}.example/rss") for i in range(3))
    await sync(db, Settings(feeds=three))
    one_left = Settings(path="/etc/tb.toml", feeds=three[:1])
    with pytest.raises(ConfigRetiresTooMuch) as refused:
        await sync(db, one_left, accept=False)
    text = str(refused.value)
    assert "/etc/tb.toml" in text and "2 of the 3 active feeds" in text
    assert "--accept-config" in text
    async with db.session() as s:
        assert all(f.retired_at is None for f in (await s.scalars(select(Feed))).all())
    # One of three is not "most": no refusal.
    await sync(db, Settings(feeds=three[:2]), accept=False)
    await sync(db, one_left, accept=True)
    async with db.session() as s:
        active = (await s.scalars(select(Feed.name).where(Feed.retired_at.is_(None)))).all()
    assert active == ["F0"]
