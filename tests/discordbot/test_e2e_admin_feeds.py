"""End to end: /feed commands through the real discord.py client, the emulator and SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import discord
import pytest

from discordbot.cogs._admin import NOT_YOURS
from discordbot.cogs.feeds import MAX_OPML_UPLOAD
from tests.discord_emulator.records import StoredMessage
from tests.discord_emulator.specs import AttachmentSpec
from tests.discordbot.admin_harness import admin_bot, answered, poll_once
from tests.discordbot.harness import GUILD, Harness, harness
from tests.helpers import FeedServer, rss
from timeline.storage.models import GLOBAL_SCOPE
from timeline.usecases import feeds as feed_svc
from timeline.usecases.opml import parse_opml

FIXTURES = Path(__file__).parent.parent / "feeds" / "fixtures"

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Two feeds in a folder, and one outline whose URL no reader could fetch. -->
<opml version="2.0">
  <head><title>My reader</title></head>
  <body>
    <outline text="World">
      <outline text="Reuters World" type="rss" xmlUrl="https://reuters.example/world.rss"/>
      <outline text="AP Top" type="rss" xmlUrl="https://ap.example/top.rss"/>
    </outline>
    <outline text="Sneaky" type="rss" xmlUrl="javascript:alert(1)"/>
  </body>
</opml>
"""


async def edited(h: Harness, message: StoredMessage) -> StoredMessage:
    """Wait until the (ephemeral) message has no buttons left, and return it."""
    await h.emu.wait_for(lambda: not h.emu.message(message.id).components, what="the answer")
    return h.emu.message(message.id)


async def feeds(h: Harness) -> list[feed_svc.FeedView]:
    async with h.db.session() as session:
        return await feed_svc.list_feeds(session, GUILD.id)


async def test_feed_add_with_a_url_that_is_not_a_feed_gets_the_reason(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.bodies["/home.html"] = (FIXTURES / "page_not_feed.html").read_bytes()
    async with harness(tmp_path) as h, admin_bot(h):
        page = await h.emu.invoke("feed add", {"url": feed_server.url("/home.html")})
        missing = await h.emu.invoke("feed add", {"url": feed_server.url("/gone.xml")})
        private = await h.emu.invoke("feed add", {"url": "http://10.0.0.1/feed.xml"})
        scheme = await h.emu.invoke("feed add", {"url": "ftp://news.example/feed.xml"})
        texts = [await answered(h, r) for r in (page, missing, private, scheme)]
        assert await feeds(h) == []

    page_text, missing_text, private_text, scheme_text = texts
    assert page.deferred and page.ephemeral
    assert page_text.startswith(f"{feed_server.url('/home.html')} cannot be used: ")
    assert page_text.endswith("got an HTML page, not an RSS or Atom feed")
    assert missing_text.endswith("cannot be used: HTTP 404 Not Found")
    assert "cannot be used" in private_text and "private address" in private_text
    # A URL that cannot be a feed is refused before any fetch (and before deferring).
    assert (
        scheme_text
        == "Bad query: feed URL must be an http:// or https:// URL, got 'ftp://news.example/feed.xml'."
    )
    assert not scheme.deferred
    assert feed_server.hits.get("/home.html") == 1


async def test_feed_add_list_status_remove(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.bodies["/world.xml"] = rss(
        ("a", "First story", "x"), ("b", "Second story", "y"), title="World <b>News</b> @here"
    )
    url = feed_server.url("/world.xml")
    async with harness(tmp_path) as h, admin_bot(h) as bot:
        add = await h.emu.invoke("feed add", {"url": url, "interval": 600})
        added = await answered(h, add)
        assert added.startswith("Following **World News here**: World News @\u200bhere, 2 entries")
        (feed,) = await feeds(h)
        assert (feed.name, feed.url, feed.interval_seconds) == ("World News here", url, 600)

        again = await h.emu.invoke("feed add", {"url": url, "name": "Other"})
        assert "already follows" in await answered(h, again)

        await poll_once(bot)
        listing = await h.emu.invoke("feed list")
        listed = await answered(h, listing)
        assert "**World News here**" in listed and "every 10 min" in listed
        assert listing.original is not None and listing.original.embeds[0]["title"] == "Feeds (1)"

        all_status = await h.emu.invoke("feed status")
        assert "2 entries" in await answered(h, all_status)
        one = await h.emu.invoke("feed status", {"name": "world news here"})
        await answered(h, one)
        assert one.original is not None
        fields = {f["name"]: f["value"] for f in one.original.embeds[0]["fields"]}
        assert fields["Stored entries"] == "2" and fields["Status"] == "ok"
        assert fields["Last success"].startswith("<t:")

        remove = await h.emu.invoke("feed remove", {"name": "World News here"})
        question = await answered(h, remove)
        assert question.startswith(f"Stop following **World News here** (<{url}>)? It is no")
        assert "its 2 stored entries stay on the timeline" in question
        assert remove.original is not None
        buttons = {b["label"]: b["custom_id"] for b in remove.original.buttons()}
        assert sorted(buttons) == ["Cancel", "Stop following"]
        assert len(await feeds(h)) == 1  # nothing happens before the answer
        await h.emu.click(remove.original, buttons["Stop following"])
        done = await edited(h, remove.original)
        assert done.content == (
            "Stopped following **World News here**; its stories stay on the timeline. "
            "`/feed purge` deletes them for good."
        )
        assert done.components == []
        # Retired, not deleted: listed as such, its stories still counted.
        kept = await h.emu.invoke("feed status", {"name": "World News here"})
        await answered(h, kept)
        assert kept.original is not None
        fields = {f["name"]: f["value"] for f in kept.original.embeds[0]["fields"]}
        assert fields["Stored entries"] == "2"
        relisted = await h.emu.invoke("feed list")
        assert "**retired**" in await answered(h, relisted)
        assert len(await feeds(h)) == 1


async def test_feed_import_opml_then_export_it(tmp_path: Path) -> None:
    upload = AttachmentSpec("reader.opml", OPML, "text/x-opml")
    async with harness(tmp_path) as h, admin_bot(h):
        first = await h.emu.invoke("feed import", {"file": upload})
        first_text = await answered(h, first)
        second = await h.emu.invoke("feed import", {"file": upload})
        second_text = await answered(h, second)
        export = await h.emu.invoke("feed export")
        await answered(h, export)
        stored = await feeds(h)

    assert "2 added, 0 skipped, 1 refused" in first_text
    assert "refused Sneaky" in first_text and "http:// or https://" in first_text
    assert "0 added, 2 skipped, 1 refused" in second_text
    assert sorted(f.name for f in stored) == ["AP Top", "Reuters World"]
    assert all(f.tags == ["World"] for f in stored)
    assert export.original is not None and export.ephemeral
    (attachment,) = export.original.attachments
    assert attachment.filename == "timeline-feeds.opml"
    outlines = parse_opml(attachment.data)
    assert sorted((o.url, o.tags) for o in outlines) == [
        ("https://ap.example/top.rss", ("World",)),
        ("https://reuters.example/world.rss", ("World",)),
    ]


async def test_feed_import_checks_size_before_download_and_refuses_hostile_xml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[str] = []
    real_read = discord.Attachment.read

    async def spy(self: discord.Attachment, **kwargs: Any) -> bytes:
        downloads.append(self.filename)
        return await real_read(self, **kwargs)

    monkeypatch.setattr(discord.Attachment, "read", spy)
    huge = AttachmentSpec("huge.opml", b"<opml>" + b" " * MAX_OPML_UPLOAD + b"</opml>")
    bomb = AttachmentSpec(
        "bomb.opml",
        b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><opml><body>&b;</body></opml>',
    )
    junk = AttachmentSpec("notes.txt", b"\x00\xffnot xml at all")
    async with harness(tmp_path) as h, admin_bot(h):
        records = [await h.emu.invoke("feed import", {"file": f}) for f in (huge, bomb, junk)]
        huge_text, bomb_text, junk_text = [await answered(h, r) for r in records]
        assert await feeds(h) == []

    assert huge_text.startswith("huge.opml is too large (1048589 bytes, at most 1048576)")
    assert downloads == ["bomb.opml", "notes.txt"]
    assert "OPML refused: DOCTYPE and entity declarations are not allowed" in bomb_text
    assert "OPML is not well-formed XML" in junk_text


async def test_feed_remove_cancel_and_unanswered_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opml = AttachmentSpec(
        "one.opml",
        b'<opml><body><outline text="Wire" xmlUrl="https://wire.example/rss"/></body></opml>',
    )
    async with harness(tmp_path) as h, admin_bot(h):
        await answered(h, await h.emu.invoke("feed import", {"file": opml}))
        cancel = await h.emu.invoke("feed remove", {"name": "wire"})
        await answered(h, cancel)
        assert cancel.original is not None
        cancel_id = next(
            b["custom_id"] for b in cancel.original.buttons() if b["label"] == "Cancel"
        )
        stranger = await h.emu.click(cancel.original, cancel_id, member="user")
        assert await answered(h, stranger) == NOT_YOURS and stranger.ephemeral
        assert h.emu.message(cancel.original.id).components != []
        await h.emu.click(cancel.original, cancel_id)
        cancelled = await edited(h, cancel.original)

        monkeypatch.setattr("discordbot.cogs._admin.CONFIRM_TIMEOUT", 0.05)
        ignored = await h.emu.invoke("feed remove", {"name": "https://wire.example/rss"})
        await answered(h, ignored)
        assert ignored.original is not None
        expired = await edited(h, ignored.original)

        missing = await h.emu.invoke("feed remove", {"name": "nope"})
        missing_text = await answered(h, missing)
        assert [f.name for f in await feeds(h)] == ["Wire"]

        async with h.db.session() as session:
            await feed_svc.add_feed(
                session,
                GLOBAL_SCOPE,
                "https://file.example/rss",
                "From file",
                None,
                "config",
                None,
                origin="config",
            )
        config = await h.emu.invoke("feed remove", {"name": "From file"})
        config_text = await answered(h, config)

        # The feed goes another way while the question is open: Confirm says so.
        raced = await h.emu.invoke("feed remove", {"name": "Wire"})
        await answered(h, raced)
        assert raced.original is not None
        async with h.db.session() as session:
            await feed_svc.remove_feed(session, GUILD.id, "Wire", "cli:someone")
        confirm_id = next(
            b["custom_id"] for b in raced.original.buttons() if b["label"] != "Cancel"
        )
        await h.emu.click(raced.original, confirm_id)
        raced_msg = await edited(h, raced.original)

    assert (cancelled.content, cancelled.components) == ("Cancelled: nothing was changed.", [])
    assert (expired.content, expired.components) == ("No answer: nothing was changed.", [])
    assert missing_text == "no feed named 'nope' on this server (see the feed list)"
    assert config_text == "feed 'From file' comes from the config file: remove it there"
    assert config.original is not None and config.original.components == []
    assert raced_msg.content == "**Wire** was retired meanwhile: nothing more to do."
