"""Issue 14.3 end to end: hostile feeds served over HTTP on 127.0.0.1, through the real poll
path (fetcher, parse in a thread or a worker process, ingest, the feeds rows), next to a good
feed, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select

from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller
from tests.feeds.conftest import fixture_bytes
from tests.helpers import FeedServer, rss
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Entry, Feed, FetchLog
from timeline.usecases.polling import PollStore

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SETTINGS = PollingSettings(
    allow_private=("127.0.0.1",), timeout_seconds=30.0, max_body_bytes=4_000_000, jitter=0.0
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database: a SQLite file, or a PostgreSQL database of this test's own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'timeline.db'}"
        await upgrade_async(url)
        database = Database(url)
        try:
            yield database
        finally:
            await database.dispose()
        return
    name = f"tb_feedsafe_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        await upgrade_async(url)
        database = Database(url)
        try:
            yield database
        finally:
            await database.dispose()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def add_feed(db: Database, name: str, url: str) -> None:
    async with db.session() as s:
        s.add(Feed(name=name, url=url))


@pytest.mark.parametrize("parse_workers", [0, 1])
async def test_hostile_feeds_lose_nothing_good_and_say_what_was_wrong(
    store: Database, feed_server: FeedServer, caplog: pytest.LogCaptureFixture, parse_workers: int
) -> None:
    good = [(f"s{i}", f"Story {i} about the summit", f"Summary {i}") for i in range(50)]
    feed_server.bodies["/surrogate.xml"] = rss(
        *good, ("bad", "Lone &#xD800; surrogate", "NUL &#0; and past the end &#x110000;")
    )
    feed_server.bodies["/deep.xml"] = rss(("deep", "Deep", "<x>" * 1_000_000), *good[:2])
    feed_server.bodies["/entity.xml"] = fixture_bytes("rss_comment_before_doctype.xml")
    feed_server.bodies["/markup.xml"] = rss(
        ("m1", "<![CDATA[<p>Para</p><script>alert(1)</script>]]>", "<![CDATA[<b>Body</b>]]>"),
        ("m2", "&lt;img src=x onerror=alert(1)&gt; Caption\u200bWord", "Plain"),
    )
    feed_server.bodies["/good.xml"] = rss(("g1", "Good story", "fine"))
    for path in ("/surrogate.xml", "/deep.xml", "/entity.xml", "/markup.xml", "/good.xml"):
        await add_feed(store, path, feed_server.url(path))
    caplog.set_level(logging.WARNING)
    settings = replace(FetchSettings.from_settings(SETTINGS), parse_workers=parse_workers)
    async with Fetcher(settings) as fetcher:
        report = await Poller(PollStore(store, SETTINGS), fetcher, concurrency=8).run_round()

    by_name = {o.name: o for o in report.outcomes}
    assert by_name["/good.xml"].new_entries == 1
    # One bad character reference: the 50 good items and the repaired one are all stored.
    assert by_name["/surrogate.xml"].outcome == "ok"
    assert by_name["/surrogate.xml"].new_entries == 51
    # Hostile documents: a clear error for the feed, nothing stored from it.
    assert by_name["/deep.xml"].error_kind == "malformed"
    assert by_name["/entity.xml"].error_kind == "malformed"
    async with store.session() as s:
        feeds = {f.name: f for f in (await s.scalars(select(Feed))).all()}
        entries = {e.key: e for e in (await s.scalars(select(Entry))).all()}
        logs = {log.feed_id: log for log in (await s.scalars(select(FetchLog))).all()}
    assert entries["bad"].title == "Lone \ufffd surrogate"
    assert entries["bad"].summary == "NUL \ufffd and past the end \ufffd"
    assert entries["m1"].title == "Para" and entries["m1"].summary == "Body"
    assert entries["m2"].title == "Caption Word"
    assert "nested more than 256 deep" in (feeds["/deep.xml"].last_error or "")
    assert "ENTITY" in (feeds["/entity.xml"].last_error or "")
    assert feeds["/surrogate.xml"].status == "ok" and feeds["/surrogate.xml"].last_error is None
    repaired = logs[feeds["/surrogate.xml"].id].error or ""
    assert "&#xD800;" in repaired and "'bad'" in repaired
    # One line per problem for the operator, naming the feed's URL.
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for path, words in [
        ("/surrogate.xml", "&#xD800;"),
        ("/deep.xml", "nested"),
        ("/entity.xml", "ENTITY"),
    ]:
        mine = [line for line in lines if f"url={feed_server.url(path)}" in line]
        assert len(mine) == 1 and words in mine[0], (path, lines)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_parse_past_its_deadline_fails_that_feed_only(
    store: Database, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    # 4 MB of elements with 100 attributes each pass the shape check (5,000 elements) and
    # take feedparser about 3 s (`python -m bench.parse_guard`).
    attributes = " ".join(f'a{i}="v"' for i in range(100))
    feed_server.bodies["/slow.xml"] = rss(("slow", "Slow", f"<x {attributes}/>" * 5_000))
    feed_server.bodies["/good.xml"] = rss(("g1", "Good story", "fine"))
    for path in ("/slow.xml", "/good.xml"):
        await add_feed(store, path, feed_server.url(path))
    caplog.set_level(logging.WARNING)
    settings = replace(
        FetchSettings.from_settings(SETTINGS), parse_workers=1, parse_timeout_seconds=0.5
    )
    async with Fetcher(settings) as fetcher:
        report = await Poller(PollStore(store, SETTINGS), fetcher, concurrency=8).run_round()
        assert fetcher._pool is not None and fetcher._pool.pids == []  # the worker was killed
    by_name = {o.name: o for o in report.outcomes}
    assert by_name["/good.xml"].new_entries == 1
    assert by_name["/slow.xml"].error_kind == "timeout"
    async with store.session() as s:
        slow = (await s.scalars(select(Feed).where(Feed.name == "/slow.xml"))).one()
    assert "parsing took longer than 0.5 s" in (slow.last_error or "")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    [line] = [line for line in lines if f"url={feed_server.url('/slow.xml')}" in line]
    assert "kind=timeout" in line
