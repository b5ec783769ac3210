"""Issue 18: an alert shows the story's image when its feed gives one (http/https only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from discordbot import render
from feeds.fetch import Fetcher, FetchSettings
from feeds.parse import parse_feed
from feeds.rounds import Poller
from tests.discordbot.test_render import make_alert
from tests.helpers import FeedServer
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Feed
from timeline.storage.outbox import SourceView
from timeline.usecases.polling import PollStore

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
RSS = {"content-type": "application/rss+xml"}
DOC = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<title>Wire</title><link>https://wire.example/</link><description>d</description>
<item><guid>a</guid><title>Thumbnail</title><link>https://wire.example/a</link>
  <media:thumbnail url="https://img.wire.example/a.jpg" width="120"/></item>
<item><guid>b</guid><title>Media content</title><link>https://wire.example/b</link>
  <media:content url="https://img.wire.example/b.png" medium="image"/></item>
<item><guid>c</guid><title>Enclosure</title><link>https://wire.example/c</link>
  <enclosure url="http://img.wire.example/c.gif" type="image/gif" length="1"/></item>
<item><guid>d</guid><title>Audio only</title><link>https://wire.example/d</link>
  <enclosure url="https://wire.example/d.mp3" type="audio/mpeg" length="1"/></item>
<item><guid>e</guid><title>Hostile</title><link>https://wire.example/e</link>
  <media:thumbnail url="javascript:alert(1)"/></item>
<item><guid>f</guid><title>None</title><link>https://wire.example/f</link></item>
</channel></rss>"""
WANTED = {
    "Thumbnail": "https://img.wire.example/a.jpg",
    "Media content": "https://img.wire.example/b.png",
    "Enclosure": "http://img.wire.example/c.gif",
    "Audio only": None,
    "Hostile": None,
    "None": None,
}


def test_the_image_is_read_from_thumbnails_media_and_image_enclosures() -> None:
    feed = parse_feed(DOC, RSS, "https://wire.example/rss", NOW)
    assert {item.title: item.image for item in feed.items} == WANTED


def test_the_alert_shows_the_first_sources_image_as_its_thumbnail() -> None:
    base = make_alert()
    with_image = SourceView("Wire", "t", None, "s", NOW, image="https://img.wire.example/a.jpg")
    data = render.alert_embed(make_alert(sources=(*base.sources, with_image))).to_dict()
    assert data["thumbnail"] == {"url": "https://img.wire.example/a.jpg"}
    hostile = SourceView("Wire", "t", None, "s", NOW, image="javascript:alert(1)")
    assert "thumbnail" not in render.alert_embed(make_alert(sources=(hostile,))).to_dict()


async def test_the_image_is_stored_with_the_entry(db: Database, feed_server: FeedServer) -> None:
    feed_server.bodies["/wire.xml"] = DOC
    async with db.session() as s:
        s.add(Feed(name="Wire", url=feed_server.url("/wire.xml")))
    settings = PollingSettings(allow_private=("127.0.0.1",), timeout_seconds=5.0, jitter=0.0)
    async with Fetcher(FetchSettings.from_settings(settings)) as fetcher:
        await Poller(PollStore(db, settings), fetcher).run_round(
            datetime.now(UTC) + timedelta(seconds=1)
        )
    async with db.session() as s:
        stored: dict[str, str | None] = dict(
            (await s.execute(select(Entry.title, Entry.image_url))).tuples().all()
        )
    assert stored == WANTED
