"""End to end: /event, /search, /export, /status and /chart through discord.py and the emulator."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.discordbot.harness import GENERAL_CHANNEL, harness
from tests.discordbot.member_harness import event_ids, make_watch, member_bot, story
from tests.discordbot.outbox_seed import T0
from timeline.storage.models import Alert, Entry, Event, EventNote, Feed, utcnow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_event_show_lists_sources_watches_notes_and_dates(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        nato = await make_watch(h.db, "NATO communique", "NATO communique")
        ev = await story(
            h.db,
            "NATO Summit Draft Communique Calls Out China",
            sources=("Bloomberg", "Reuters"),
            summary="Leaders meet on July 11, 2024 in Washington.",
            watches=[nato],
        )
        async with member_bot(h, ("discordbot.cogs.events",)):
            note = await h.emu.invoke(
                "event note", {"id": ev, "text": "@everyone check **this**"}, member="user"
            )
            ix = await h.emu.invoke("event show", {"id": ev}, member="user")
        assert not note.ephemeral and "Note added to event `#" in note.text()
        assert note.original is not None and note.original.allowed_mentions is not None
        assert "@\u200beveryone" in note.text()  # rendered as text, pings nobody
        (embed,) = ix.original.embeds if ix.original else [{}]
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert embed["title"] == "NATO Summit Draft Communique Calls Out China"
        sources = fields["Sources (2)"]
        assert "[Bloomberg](https://bloomberg.example/" in sources and "[Reuters](" in sources
        assert sources.count("<t:") == 2
        assert fields["Watches"] == "NATO communique"
        assert "2024-07-11" in fields["Dates mentioned"]
        notes = fields["Notes (1, newest first)"]
        assert "\\*\\*this\\*\\*" in notes and "user" in notes


async def test_event_show_unknown_id_is_private(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        async with member_bot(h, ("discordbot.cogs.events",)):
            ix = await h.emu.invoke("event show", {"id": 999}, member="user")
        assert ix.ephemeral and "no event #999" in ix.text()


async def test_merge_and_split_are_for_admins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="timeline.usecases.events")
    async with harness(tmp_path) as h:
        a = await story(h.db, "NATO summit opens", sources=("Bloomberg",))
        b = await story(
            h.db, "NATO summit begins", sources=("Reuters",), at=T0 + timedelta(hours=1)
        )
        async with member_bot(h, ("discordbot.cogs.events",)):
            refused = await h.emu.invoke("event merge", {"keep": a, "other": b}, member="user")
            merged = await h.emu.invoke("event merge", {"keep": a, "other": b}, member="admin")
            async with h.db.session() as session:
                reuters = await session.scalar(
                    select(Entry.id).join(Feed).where(Feed.name == "Reuters")
                )
            split = await h.emu.invoke("event split", {"id": a, "source": reuters}, member="admin")
            again = await h.emu.invoke("event split", {"id": a, "source": reuters}, member="admin")
        assert refused.ephemeral and "Only server admins" in refused.text()
        assert f"Merged event `#{b}` into `#{a}`" in merged.text() and "2 sources" in merged.text()
        assert f"out of event `#{a}` into the new event" in split.text()
        assert again.ephemeral and "is not part of event" in again.text()
        async with h.db.session() as session:
            events = (await session.scalars(select(Event.id).order_by(Event.id))).all()
            moved = await session.scalar(select(Entry.event_id).where(Entry.id == reuters))
        assert a in events and len(events) == 2 and moved != a
        assert f"into the new event `#{moved}`" in split.text()
        admin_id = h.guild.member("admin").id
        logged = [r.getMessage() for r in caplog.records if r.name == "timeline.usecases.events"]
        assert f"event {b} merged into {a} by admin ({admin_id}) in guild {h.guild.id}" in logged


async def test_timeline_add_records_a_manual_event_and_refuses_bad_input(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        async with member_bot(h, ("discordbot.cogs.timeline",)):
            ok = await h.emu.invoke(
                "timeline add",
                {"date": "2024-07-10", "title": "Summit ends", "url": "https://example.org/x"},
                member="user",
            )
            bad_url = await h.emu.invoke(
                "timeline add",
                {"date": "2024-07-10", "title": "x", "url": "javascript:alert(1)"},
                member="user",
            )
            bad_date = await h.emu.invoke(
                "timeline add", {"date": "soon", "title": "x"}, member="user"
            )
            shown = await h.emu.invoke("timeline show", {"until": "2024-07-11"}, member="user")
            await h.emu.wait_for_interaction(
                shown, lambda r: bool(r.original and r.original.embeds)
            )
        assert not ok.ephemeral and "Added event `#1`" in ok.text() and "Summit ends" in ok.text()
        assert bad_url.ephemeral and "link" in bad_url.text()
        assert bad_date.ephemeral and "date: 'soon' is not a time I understand" in bad_date.text()
        assert shown.original is not None and event_ids(shown.original) == [1]
        assert "manual entry" in shown.text()
        async with h.db.session() as session:
            event = await session.get(Event, 1)
        assert (
            event is not None
            and event.manual
            and event.created_by == "user (" + str(h.guild.member("user").id) + ")"
        )


async def test_search_highlights_escapes_and_pages(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        for i in range(12):
            await story(
                h.db,
                f"Drone sighting *{i}* near base",
                summary=f"A drone was seen. @here <b>report</b> {i}",
                at=T0 + timedelta(hours=i),
            )
        await story(h.db, "Harvest festival", at=T0)
        async with member_bot(h, ("discordbot.cogs.search",)):
            ix = await h.emu.invoke("search", {"query": "drone"}, member="user")
            msg = await h.emu.wait_for_message(GENERAL_CHANNEL, lambda m: bool(m.embeds))
            description = msg.embeds[0]["description"]
            assert description.count("`#") == 10
            assert "**Drone** sighting \\*11\\* near base" in description
            assert "> A **drone** was seen. @\u200bhere report" in description
            assert "Harvest" not in description
            await h.emu.click(msg, "search:next", member="user")
            msg = await h.emu.wait_for_message(GENERAL_CHANNEL, lambda m: m.edit_count >= 2)
            assert msg.embeds[0]["description"].count("`#") == 2
            assert msg.component("search:next")["disabled"] is True  # type: ignore[index]
        assert not ix.ephemeral


async def test_search_with_a_bad_query_gets_the_parser_message_with_the_column(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        async with member_bot(h, ("discordbot.cogs.search",)):
            unbalanced = await h.emu.invoke("search", {"query": "NATO (summit"}, member="user")
            dangling = await h.emu.invoke("search", {"query": "drone OR"}, member="user")
            nothing = await h.emu.invoke("search", {"query": "zeppelin"}, member="user")
            await h.emu.wait_for_interaction(
                nothing, lambda r: bool(r.original and not r.original.loading)
            )
        for ix in (unbalanced, dangling):
            assert ix.ephemeral and not ix.deferred
            assert ix.text().startswith("Bad query: ") and " at column " in ix.text()
        assert "No stored story matches zeppelin." in nothing.text()


async def test_export_sends_a_private_file_in_each_format(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        await story(h.db, "NATO communique =cmd", sources=("Bloomberg", "Reuters"))
        await story(h.db, "Harvest festival", at=T0 - timedelta(days=3))
        async with member_bot(h, ("discordbot.cogs.export",)):
            results = {
                fmt: await h.emu.invoke(
                    "export", {"format": fmt, "query": "NATO"}, member="user", timeout=10
                )
                for fmt in ("csv", "json", "ics", "md")
            }
            for ix in results.values():
                await h.emu.wait_for_interaction(
                    ix, lambda r: bool(r.original and r.original.attachments)
                )
            bad = await h.emu.invoke("export", {"format": "csv", "since": "never"}, member="user")
        files = {}
        for fmt, ix in results.items():
            assert ix.ephemeral and ix.original is not None
            (attachment,) = ix.original.attachments
            assert attachment.filename.endswith(f".{fmt}")
            files[fmt] = attachment.data
        doc = json.loads(files["json"])
        assert doc["count"] == 1 and doc["events"][0]["title"] == "NATO communique =cmd"
        assert [s["feed"] for s in doc["events"][0]["sources"]] == ["Bloomberg", "Reuters"]
        assert (
            b"'NATO communique =cmd" not in files["csv"] and b"NATO communique =cmd" in files["csv"]
        )
        assert files["ics"].startswith(b"BEGIN:VCALENDAR\r\n") and b"SUMMARY:NATO" in files["ics"]
        assert b"Harvest" not in files["md"] and b"# Timeline" in files["md"]
        assert bad.ephemeral and "since: 'never'" in bad.text()


async def test_status_reports_feeds_polls_alerts_and_version(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        nato = await make_watch(h.db, "NATO communique", "NATO")
        await story(h.db, "NATO", sources=("Bloomberg",), watches=[nato])
        now = utcnow()
        async with h.db.session() as session:
            feeds = {f.name: f for f in (await session.scalars(select(Feed))).all()}
            good = feeds["Bloomberg"]
            good.status, good.last_checked_at = "ok", now - timedelta(minutes=3)
            good.next_check_at = now + timedelta(minutes=12)
            session.add(
                Feed(
                    name="Broken @everyone",
                    url="https://broken.example/rss",
                    status="failing",
                    error_count=6,
                    last_error="HTTP 503 @here **down**",
                    last_checked_at=now - timedelta(minutes=1),
                    next_check_at=now + timedelta(hours=1),
                )
            )
            alert = (await session.scalars(select(Alert))).one()
            alert.status, alert.last_error = "failed", "403 Missing Access"
        async with member_bot(h, ("discordbot.cogs.status",)) as bot:
            ix = await h.emu.invoke("status", member="user")
            await h.emu.wait_for_interaction(ix, lambda r: bool(r.original and r.original.embeds))
        assert ix.ephemeral and ix.original is not None
        (embed,) = ix.original.embeds
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Feeds"] == "2 followed · 1 healthy · 1 failing"
        failing = fields["Failing feeds"]
        assert (
            "Broken @\u200beveryone" in failing
            and "HTTP 503 @\u200bhere \\*\\*down\\*\\*" in failing
        )
        assert fields["Last poll"].startswith("<t:") and fields["Next poll"].startswith("<t:")
        assert fields["Alerts"] == "0 pending · 1 failed"
        assert "403 Missing Access" in fields["Recent failed alerts"]
        assert embed["footer"]["text"] == f"Version {bot.version}"


async def test_chart_posts_a_png(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        nato = await make_watch(h.db, "NATO communique", "NATO")
        now = utcnow()
        for i in range(6):
            await story(h.db, f"NATO story {i}", at=now - timedelta(days=i), watches=[nato])
        await story(h.db, "Big NATO summit", sources=("A", "B", "C"), at=now - timedelta(days=2))
        await story(h.db, "Ancient NATO story", at=now - timedelta(days=2000))
        async with member_bot(h, ("discordbot.cogs.chart",)):
            ix = await h.emu.invoke(
                "chart", {"query": "NATO", "since": "7d", "bucket": "day"}, member="user"
            )
            await h.emu.wait_for_interaction(
                ix, lambda r: bool(r.original and r.original.attachments), timeout=20
            )
            too_long = await h.emu.invoke("chart", {"since": "1990-01-01"}, member="user")
            await h.emu.wait_for_interaction(
                too_long, lambda r: bool(r.original and not r.original.loading), timeout=20
            )
            bad = await h.emu.invoke("chart", {"query": '"open'}, member="user")
        assert not ix.ephemeral and ix.original is not None
        (png,) = ix.original.attachments
        assert png.filename == "timeline-chart.png" and png.data.startswith(PNG_MAGIC)
        assert "7 events matching NATO, per day" in ix.text()
        assert "too long to draw" in too_long.text() and "coarser bucket" in too_long.text()
        assert bad.ephemeral and "Bad query:" in bad.text() and "column 1" in bad.text()


async def test_notes_are_stored_with_the_author(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        ev = await story(h.db, "Story")
        async with member_bot(h, ("discordbot.cogs.events",)):
            ix = await h.emu.invoke("event note", {"id": ev, "text": "  "}, member="user")
        assert ix.ephemeral and "note must not be empty" in ix.text()
        async with h.db.session() as session:
            assert (await session.scalars(select(EventNote))).all() == []
