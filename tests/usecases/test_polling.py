"""Polling into the timeline: idempotent ingest, silent backfill, events, outbox, bad feeds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from sqlalchemy import func, select

from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller
from tests.helpers import FeedServer, gzip_bomb, rss
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Entry, Event, Feed, FetchLog, Watch
from timeline.usecases.polling import PollStore

NATO_TITLE = "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine"
NATO_SUMMARY = "The draft mentions dual-use military-civilian materials."
SETTINGS = PollingSettings(
    allow_private=("127.0.0.1",), timeout_seconds=2.0, max_body_bytes=200_000, jitter=0.0
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


async def add_feed(db: Database, name: str, url: str) -> int:
    async with db.session() as s:
        feed = Feed(name=name, url=url, next_check_at=datetime.now(UTC) - timedelta(seconds=1))
        s.add(feed)
        await s.flush()
        return feed.id


async def add_watch(db: Database, name: str, query: str, channel: int) -> None:
    async with db.session() as s:
        s.add(Watch(name=name, query=query, channel_id=channel))


async def make_due(db: Database) -> None:
    async with db.session() as s:
        for feed in (await s.scalars(select(Feed))).all():
            feed.next_check_at = datetime.now(UTC) - timedelta(seconds=1)


async def count(db: Database, model: type) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


def poller(db: Database, fetcher: Fetcher, settings: PollingSettings = SETTINGS) -> Poller:
    return Poller(PollStore(db, settings), fetcher, concurrency=8)


async def test_polling_twice_stores_nothing_twice(
    db: Database, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.bodies["/a.xml"] = rss(("1", "One", "s"), ("2", "Two", "s"))
    await add_feed(db, "A", feed_server.url("/a.xml"))
    p = poller(db, fetcher)
    first = await p.run_round()
    assert [o.new_entries for o in first.outcomes] == [2]
    await make_due(db)
    second = await p.run_round()
    assert second.outcomes[0].outcome == "not_modified"
    assert await count(db, Entry) == 2
    assert await count(db, Event) == 2
    # Same bytes without an ETag: the body hash saves the parse.
    feed_server.handlers["/a.xml"] = lambda r: _plain(feed_server.bodies["/a.xml"])
    await make_due(db)
    third = await p.run_round()
    assert third.outcomes[0].outcome in ("unchanged", "ok")
    assert await count(db, Entry) == 2


async def _plain(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/rss+xml")


async def test_first_poll_is_silent_then_new_story_alerts(
    db: Database, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.bodies["/b.xml"] = rss(("old", "NATO communique from last year", "old news"))
    await add_feed(db, "Bloomberg", feed_server.url("/b.xml"))
    await add_watch(db, "nato", "NATO communique", 111)
    await add_watch(db, "dual", "dual-use", 222)
    p = poller(db, fetcher)
    first = await p.run_round()
    assert first.outcomes[0].backfill and first.outcomes[0].alerts == []
    assert await count(db, Alert) == 0

    feed_server.bodies["/b.xml"] = rss(
        ("new", NATO_TITLE, NATO_SUMMARY), ("old", "NATO communique from last year", "old news")
    )
    await make_due(db)
    second = await p.run_round()
    alerts = second.outcomes[0].alerts
    assert sorted((a.watch, a.channel_id) for a in alerts) == [("dual", 222), ("nato", 111)]
    async with db.session() as s:
        rows = (await s.scalars(select(Alert))).all()
    assert {r.status for r in rows} == {"pending"}
    assert len({r.event_id for r in rows}) == 1


async def test_alert_on_first_poll_when_configured(
    db: Database, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.bodies["/b.xml"] = rss(("new", NATO_TITLE, NATO_SUMMARY))
    await add_feed(db, "Bloomberg", feed_server.url("/b.xml"))
    await add_watch(db, "nato", "NATO communique", 111)
    report = await poller(db, fetcher, replace(SETTINGS, alert_on_first_poll=True)).run_round()
    assert len(report.outcomes[0].alerts) == 1


async def test_same_link_from_two_feeds_is_one_event_two_sources(
    db: Database, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    story = ("nato-1", NATO_TITLE, NATO_SUMMARY)
    feed_server.bodies["/a.xml"] = rss(("x", "Other", "other"))
    feed_server.bodies["/b.xml"] = rss(("y", "Else", "else"))
    await add_feed(db, "A", feed_server.url("/a.xml"))
    await add_feed(db, "B", feed_server.url("/b.xml"))
    await add_watch(db, "nato", "NATO communique", 111)
    p = poller(db, fetcher)
    await p.run_round()
    feed_server.bodies["/a.xml"] = rss(story, ("x", "Other", "other"))
    await make_due(db)
    await p.run_round()
    feed_server.bodies["/b.xml"] = rss(story, ("y", "Else", "else"))
    await make_due(db)
    third = await p.run_round()
    # The second source joins the event: no second alert.
    assert [a for o in third.outcomes for a in o.alerts] == []
    async with db.session() as s:
        entries = (await s.scalars(select(Entry).where(Entry.link.like("%nato-1")))).all()
        assert len(entries) == 2 and entries[0].event_id == entries[1].event_id
        assert await s.scalar(select(func.count()).select_from(Alert)) == 1


async def test_sent_alert_is_marked_for_edit_when_a_source_joins(
    db: Database, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    story = ("nato-1", NATO_TITLE, NATO_SUMMARY)
    feed_server.bodies["/a.xml"] = rss(story)
    feed_server.bodies["/b.xml"] = rss(("y", "Else", "else"))
    await add_feed(db, "A", feed_server.url("/a.xml"))
    await add_feed(db, "B", feed_server.url("/b.xml"))
    await add_watch(db, "nato", "NATO communique", 111)
    p = poller(db, fetcher, replace(SETTINGS, alert_on_first_poll=True))
    await p.run_round()
    async with db.session() as s:
        alert = (await s.scalars(select(Alert))).one()
        alert.status, alert.message_id = "sent", 42
    feed_server.bodies["/b.xml"] = rss(story, ("y", "Else", "else"))
    await make_due(db)
    await p.run_round()
    async with db.session() as s:
        alert = (await s.scalars(select(Alert))).one()
    assert alert.dirty and alert.status == "sent"


async def test_bad_feeds_fail_alone_and_the_round_goes_on(
    db: Database, fetcher: Fetcher, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    never = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await never.wait()
        return web.Response(text="late")

    async def status(code: int, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=code, text="no", headers=headers)

    async def bomb(_: web.Request) -> web.Response:
        return web.Response(
            body=gzip_bomb(50_000_000),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/xml"},
        )

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop.xml")

    feed_server.handlers.update(
        {
            "/slow.xml": slow,
            "/500.xml": lambda r: status(500),
            "/429.xml": lambda r: status(429, {"Retry-After": "3600"}),
            "/bomb.xml": bomb,
            "/loop.xml": loop,
        }
    )
    feed_server.bodies["/html.xml"] = b"<!doctype html><html><body><p>Hello</p></body></html>"
    feed_server.bodies["/broken.xml"] = b"<rss><channel><item><title>x</ti"
    feed_server.bodies["/good.xml"] = rss(("g1", "Good story", "fine"))
    feed_server.bodies["/huge.xml"] = b"<rss>" + b"x" * 300_000 + b"</rss>"
    bad = ["/slow.xml", "/500.xml", "/429.xml", "/bomb.xml", "/loop.xml", "/html.xml"]
    bad += ["/broken.xml", "/huge.xml", "/404.xml"]
    for path in bad:
        await add_feed(db, path, feed_server.url(path))
    await add_feed(db, "closed", "http://127.0.0.1:9/feed.xml")
    await add_feed(db, "private", "http://10.0.0.1/feed.xml")
    await add_feed(db, "good", feed_server.url("/good.xml"))
    caplog.set_level(logging.WARNING)
    try:
        report = await poller(db, fetcher).run_round()
    finally:
        never.set()
    by_name = {o.name: o for o in report.outcomes}
    assert by_name["good"].outcome == "ok" and by_name["good"].new_entries == 1
    errors = {name: o.error_kind for name, o in by_name.items() if o.outcome == "error"}
    assert errors == {
        "/slow.xml": "timeout",
        "/500.xml": "http",
        "/429.xml": "rate_limited",
        "/bomb.xml": "too_large",
        "/loop.xml": "redirect_loop",
        "/html.xml": "not_feed",
        "/broken.xml": "malformed",
        "/huge.xml": "too_large",
        "/404.xml": "http",
        "closed": "unreachable",
        "private": "refused",
    }
    now = datetime.now(UTC)
    async with db.session() as s:
        feeds = {f.name: f for f in (await s.scalars(select(Feed))).all()}
        logs = await s.scalar(select(func.count()).select_from(FetchLog))
    assert logs == 12
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in errors:
        assert feeds[name].error_count == 1 and feeds[name].last_error
        assert feeds[name].next_check_at > now
        assert feeds[name].lease_until is None
        # One clear line per failing feed, naming its URL.
        assert sum(f"url={feeds[name].url} " in m for m in warnings) == 1, name
    # Retry-After: one hour asked, one hour (at least) waited.
    assert feeds["/429.xml"].next_check_at >= now + timedelta(seconds=3500)
    assert feeds["good"].error_count == 0 and feeds["good"].status == "ok"


async def test_failing_feed_backs_off_and_is_marked_failing_not_dropped(
    db: Database, fetcher: Fetcher
) -> None:
    settings = replace(SETTINGS, failing_after=3, interval_seconds=60, backoff_max_seconds=600)
    await add_feed(db, "dead", "http://127.0.0.1:9/feed.xml")
    p = poller(db, fetcher, settings)
    delays = []
    for _ in range(5):
        await make_due(db)
        before = datetime.now(UTC)
        await p.run_round()
        async with db.session() as s:
            feed = (await s.scalars(select(Feed))).one()
        delays.append((feed.next_check_at - before).total_seconds())
    assert feed.status == "failing" and feed.error_count == 5
    assert delays == sorted(delays) and delays[-1] <= 600 + 1
    assert delays[0] == pytest.approx(60, abs=2) and delays[1] == pytest.approx(120, abs=2)


async def test_permanent_redirect_updates_the_stored_url(
    db: Database, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(feed_server.url("/new.xml"))

    feed_server.handlers["/old.xml"] = moved
    feed_server.bodies["/new.xml"] = rss(("1", "One", "s"))
    await add_feed(db, "moving", feed_server.url("/old.xml"))
    await poller(db, fetcher).run_round()
    async with db.session() as s:
        feed = (await s.scalars(select(Feed))).one()
    assert feed.url == feed_server.url("/new.xml")


async def test_only_due_feeds_are_polled(
    db: Database, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.bodies["/a.xml"] = rss(("1", "One", "s"))
    await add_feed(db, "A", feed_server.url("/a.xml"))
    p = poller(db, fetcher)
    await p.run_round()
    again = await p.run_round()
    assert again.outcomes == [] and feed_server.hits["/a.xml"] == 1
