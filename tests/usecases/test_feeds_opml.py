"""Feeds: add after a probe, remove, list, status; OPML import/export, hostile OPML refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.usecases.factories import make_feed, make_story
from timeline.domain.errors import BadQuery, Conflict, FeedUnusable, NotFound
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Event
from timeline.usecases.feeds import (
    FeedProbe,
    add_feed,
    feed_names,
    feed_status,
    feed_statuses,
    list_feeds,
    remove_feed,
)
from timeline.usecases.opml import export_opml, import_opml, parse_opml

OK = FeedProbe(title="Reuters: World News", entry_count=20)


async def test_add_feed_names_it_after_the_probe_title(sdb: Database) -> None:
    async with sdb.session() as s:
        view = await add_feed(s, 7, "https://reuters.example/world", None, 900, "alice", OK)
    assert view.name == "Reuters World News"  # ':' is not allowed in names the config accepts
    assert view.origin == "discord" and view.guild_id == 7 and view.interval_seconds == 900
    async with sdb.session() as s:
        assert [f.name for f in await list_feeds(s, 7)] == ["Reuters World News"]
        assert await list_feeds(s, 8) == []
        assert await feed_names(s, 7, "reu") == ["Reuters World News"]
        assert await feed_names(s, 7, "world") == ["Reuters World News"]


async def test_add_feed_refuses_failed_probe_bad_input_and_duplicates(sdb: Database) -> None:
    async with sdb.session() as s:
        with pytest.raises(FeedUnusable, match="HTML page"):
            await add_feed(
                s,
                1,
                "https://x.example/",
                None,
                None,
                "a",
                FeedProbe(None, 0, error="an HTML page, not a feed"),
            )
        for url in ("", "file:///etc/passwd", "http://", "https://a b.example/", "x" * 3000):
            with pytest.raises(BadQuery):
                await add_feed(s, 1, url, None, None, "a", OK)
        with pytest.raises(BadQuery):
            await add_feed(s, 1, "https://x.example/rss", None, 5, "a", OK)
        with pytest.raises(BadQuery):
            await add_feed(s, 1, "https://x.example/rss", "bad:name", None, "a", OK)
        await add_feed(s, 1, "https://x.example/rss", "X", None, "a", OK)
        with pytest.raises(Conflict):
            await add_feed(s, 1, "https://x.example/rss", "Other", None, "a", OK)
        with pytest.raises(Conflict):
            await add_feed(s, 1, "https://y.example/rss", "x", None, "a", OK)
        # A config-file feed (guild 0) counts as already followed by every guild.
        await make_feed(s, "Shared", "https://shared.example/rss")
        with pytest.raises(Conflict):
            await add_feed(s, 1, "https://shared.example/rss", None, None, "a", OK)


async def test_remove_feed_retires_it_and_keeps_its_history_until_revived(
    sdb: Database,
) -> None:
    async with sdb.session() as s:
        mine = await make_feed(s, "Mine", "https://mine.example/rss", guild_id=3, origin="discord")
        other = await make_feed(s, "Other", "https://o.example/rss", guild_id=3, origin="discord")
        alone = await make_story(s, [mine], "Only mine", hours_ago=1)
        both = await make_story(s, [mine, other], "Both", hours_ago=4, step_minutes=60)
    async with sdb.session() as s:
        entries = await s.scalar(select(func.count(Entry.id)))
        with pytest.raises(NotFound):
            await remove_feed(s, 4, "Mine", "mallory")
        view = await remove_feed(s, 3, "mine", "alice")
        assert view.retired_at is not None
    async with sdb.session() as s:
        # Nothing of the record is gone: the stories and both events stay.
        assert await s.get(Event, alone.id) is not None
        assert await s.get(Event, both.id) is not None
        assert await s.scalar(select(func.count(Entry.id))) == entries
        listed = {f.name: f.retired_at is not None for f in await list_feeds(s, 3)}
        assert listed == {"Mine": True, "Other": False}
        with pytest.raises(Conflict, match="already retired"):
            await remove_feed(s, 3, "Mine", "alice")
    async with sdb.session() as s:
        # Adding the URL again follows the same feed, with its history.
        back = await add_feed(s, 3, "https://mine.example/rss", None, None, "alice", OK)
        assert back.revived and back.id == mine.id and back.retired_at is None
        assert await s.scalar(select(func.count(Entry.id)).where(Entry.feed_id == mine.id)) == 2


async def test_config_feeds_cannot_be_removed_from_a_guild(sdb: Database) -> None:
    async with sdb.session() as s:
        await make_feed(s, "Shared", "https://shared.example/rss")
        with pytest.raises(Conflict, match="config file"):
            await remove_feed(s, 9, "Shared", "alice")


async def test_feed_status_reports_health(sdb: Database) -> None:
    async with sdb.session() as s:
        feed = await make_feed(s, "Flaky", "https://flaky.example/rss")
        feed.status, feed.error_count, feed.last_error = "failing", 6, "HTTP 503"
        await make_story(s, [feed], "story")
    async with sdb.session() as s:
        status = await feed_status(s, 0, "https://flaky.example/rss")
        assert (status.status, status.error_count, status.last_error) == ("failing", 6, "HTTP 503")
        assert status.entry_count == 1
        assert [st.name for st in await feed_statuses(s, 0)] == ["Flaky"]


NESTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>Mine</title></head><body>
  <outline text="World">
    <outline text="Reuters World" type="rss" xmlUrl="https://reuters.example/world"/>
    <outline text="Europe">
      <outline title="BBC: Europe" text="ignored" xmlUrl="https://bbc.example/europe" category="eu,news"/>
    </outline>
  </outline>
  <outline text="no url, no children"/>
  <outline text="Bad" xmlUrl="javascript:alert(1)"/>
  <outline xmlUrl="https://untitled.example/feed.xml"/>
</body></opml>"""


def test_parse_opml_reads_nested_outlines_as_tags() -> None:
    feeds = parse_opml(NESTED)
    assert [(f.url, f.name, f.tags) for f in feeds] == [
        ("https://reuters.example/world", "Reuters World", ("World",)),
        ("https://bbc.example/europe", "BBC: Europe", ("World", "Europe", "eu", "news")),
        ("javascript:alert(1)", "Bad", ()),
        ("https://untitled.example/feed.xml", "", ()),
    ]


async def test_opml_import_then_export_round_trips(sdb: Database) -> None:
    async with sdb.session() as s:
        report = await import_opml(s, 2, NESTED, "alice")
    assert report.added == ["Reuters World", "BBC Europe", "untitled.example"]
    assert len(report.errors) == 1 and "Bad" in report.errors[0]
    async with sdb.session() as s:
        again = await import_opml(s, 2, NESTED, "alice")
        assert again.added == [] and len(again.skipped) == 3
        exported = await export_opml(s, 2)
    back = parse_opml(exported)
    assert {(f.url, f.name) for f in back} == {
        ("https://reuters.example/world", "Reuters World"),
        ("https://bbc.example/europe", "BBC Europe"),
        ("https://untitled.example/feed.xml", "untitled.example"),
    }
    tags = {f.url: f.tags for f in back}
    assert tags["https://bbc.example/europe"] == ("World", "Europe", "eu", "news")


async def test_opml_export_escapes_hostile_names(sdb: Database) -> None:
    async with sdb.session() as s:
        await make_feed(s, "A&B <x>", 'https://q.example/?a=1&b="2"')
        data = await export_opml(s, 0)
    (feed,) = parse_opml(data)
    assert feed.url == 'https://q.example/?a=1&b="2"' and feed.name == "A&B <x>"


ENTITY_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<opml version="2.0"><body><outline text="&lol3;" xmlUrl="https://x.example/"/></body></opml>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><body><outline text="&xxe;" xmlUrl="https://x.example/"/></body></opml>"""

HOSTILE = [
    ENTITY_BOMB,
    XXE,
    b"<opml><body><outline xmlUrl='https://x.example/'></body></opml>",
    b"<html><body/></html>",
    b"",
    b"\xff\xfe\x00garbage",
    b"<opml>" + b"<outline>" * 200 + b"</outline>" * 200 + b"</opml>",
    b"<opml><body>" + b"<outline xmlUrl='https://x.example/a'/>" * 3000 + b"</body></opml>",
    b"<opml>" + b" " * (3 * 1024 * 1024) + b"</opml>",
]


@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_opml_is_refused_with_a_domain_error(sdb: Database, data: bytes) -> None:
    async with sdb.session() as s:
        with pytest.raises(BadQuery):
            await import_opml(s, 1, data, "mallory")
        assert await list_feeds(s, 1) == []
