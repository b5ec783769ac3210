"""Events: show, notes, manual events, merge and split keep their invariants."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.usecases.factories import NOW, make_feed, make_story
from timeline.domain.errors import BadQuery, Conflict, NotFound
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Entry, Event, EventNote, Watch
from timeline.usecases.events import (
    add_manual_event,
    add_note,
    merge_events,
    show_event,
    split_event,
)


async def _watch(session: AsyncSession, name: str, guild_id: int = 0) -> Watch:
    watch = Watch(guild_id=guild_id, name=name, query=name, channel_id=111)
    session.add(watch)
    await session.flush()
    return watch


async def test_show_event_lists_sources_watches_and_notes(sdb: Database) -> None:
    async with sdb.session() as s:
        bloomberg = await make_feed(s, "Bloomberg", "https://bloomberg.example/rss")
        reuters = await make_feed(s, "Reuters", "https://reuters.example/rss")
        event = await make_story(
            s, [bloomberg, reuters], "NATO Summit Draft Communique Calls Out China"
        )
        watch = await _watch(s, "NATO communique")
        s.add(Alert(watch_id=watch.id, event_id=event.id, channel_id=111))
        await add_note(s, 0, event.id, "Confirmed by\nthe press office", "alice")
    async with sdb.session() as s:
        detail = await show_event(s, 0, event.id)
    assert [src.feed_name for src in detail.event.sources] == ["Bloomberg", "Reuters"]
    assert detail.event.watches == ["NATO communique"]
    assert detail.event.note_count == 1
    assert detail.notes[0].author == "alice"
    assert detail.notes[0].text == "Confirmed by\nthe press office"
    assert set(detail.summaries) == {src.entry_id for src in detail.event.sources}


async def test_events_of_another_guild_are_not_found(sdb: Database) -> None:
    async with sdb.session() as s:
        mine = await make_feed(s, "Mine", "https://mine.example/rss", guild_id=1, origin="discord")
        event = await make_story(s, [mine], "Private story")
    async with sdb.session() as s:
        assert (await show_event(s, 1, event.id)).event.title == "Private story"
        with pytest.raises(NotFound):
            await show_event(s, 2, event.id)
        with pytest.raises(NotFound):
            await add_note(s, 2, event.id, "sneaky", "mallory")
        with pytest.raises(NotFound):
            await show_event(s, 0, event.id)


async def test_note_text_is_cleaned_and_bounded(sdb: Database) -> None:
    async with sdb.session() as s:
        feed = await make_feed(s, "F", "https://f.example/rss")
        event = await make_story(s, [feed], "Story")
        with pytest.raises(BadQuery):
            await add_note(s, 0, event.id, " \x00 \u200b ", "bob")
        with pytest.raises(BadQuery):
            await add_note(s, 0, event.id, "x" * 5000, "bob")
        note = await add_note(s, 0, event.id, "ok\x07 fine", "bob")
    assert note.text == "ok fine"


async def test_manual_event_appears_with_its_link(sdb: Database) -> None:
    async with sdb.session() as s:
        view = await add_manual_event(
            s, 5, NOW - timedelta(days=2), "  Briefing to the council ", "https://x.example/a", "al"
        )
    assert view.manual and view.title == "Briefing to the council" and view.sources == []
    async with sdb.session() as s:
        assert (await show_event(s, 5, view.id)).event.link == "https://x.example/a"
        for bad_url in ("javascript:alert(1)", "ftp://x.example/", "https://exa mple.com"):
            with pytest.raises(BadQuery):
                await add_manual_event(s, 5, NOW, "t", bad_url, "al")
        with pytest.raises(BadQuery):
            await add_manual_event(s, 5, NOW.replace(tzinfo=None), "t", None, "al")


async def test_merge_moves_sources_notes_and_keeps_the_sent_alert(sdb: Database) -> None:
    async with sdb.session() as s:
        a = await make_feed(s, "A", "https://a.example/rss")
        b = await make_feed(s, "B", "https://b.example/rss")
        keep = await make_story(s, [a], "Keep", hours_ago=1)
        other = await make_story(s, [b], "Other", hours_ago=5)
        nato = await _watch(s, "nato")
        dual = await _watch(s, "dual")
        # Same watch on both events: the sent one must survive, wherever it was.
        s.add(Alert(watch_id=nato.id, event_id=keep.id, channel_id=1, status="pending"))
        s.add(Alert(watch_id=nato.id, event_id=other.id, channel_id=1, status="sent", message_id=9))
        s.add(Alert(watch_id=dual.id, event_id=other.id, channel_id=1, status="pending"))
        s.add(EventNote(event_id=other.id, author="x", text="note on other"))
    async with sdb.session() as s:
        view = await merge_events(s, 0, keep.id, other.id, "admin")
    assert {src.feed_name for src in view.sources} == {"A", "B"}
    assert view.occurred_at == NOW - timedelta(hours=5)  # earliest source
    assert view.note_count == 1
    async with sdb.session() as s:
        assert await s.get(Event, other.id) is None
        alerts = (await s.scalars(select(Alert).order_by(Alert.watch_id))).all()
        assert [(al.watch_id, al.event_id, al.status) for al in alerts] == [
            (nato.id, keep.id, "sent"),
            (dual.id, keep.id, "pending"),
        ]
        assert alerts[0].message_id == 9 and alerts[0].dirty


async def test_merge_refuses_self_and_other_guilds(sdb: Database) -> None:
    async with sdb.session() as s:
        g1 = await make_feed(s, "G1", "https://g1.example/rss", guild_id=1, origin="discord")
        g2 = await make_feed(s, "G2", "https://g2.example/rss", guild_id=2, origin="discord")
        shared = await make_feed(s, "Shared", "https://shared.example/rss")
        e1 = await make_story(s, [g1], "one")
        e2 = await make_story(s, [g2], "two")
        e0 = await make_story(s, [shared], "zero")
        with pytest.raises(Conflict):
            await merge_events(s, 1, e1.id, e1.id, "admin")
        with pytest.raises(NotFound):
            await merge_events(s, 1, e1.id, e2.id, "admin")
        with pytest.raises(Conflict):
            await merge_events(s, 1, e1.id, e0.id, "admin")


async def test_split_moves_one_source_into_a_new_event(sdb: Database) -> None:
    async with sdb.session() as s:
        a = await make_feed(s, "A", "https://a.example/rss")
        b = await make_feed(s, "B", "https://b.example/rss")
        c = await make_feed(s, "C", "https://c.example/rss")
        event = await make_story(s, [a, b, c], "Three outlets", hours_ago=3, step_minutes=60)
        watch = await _watch(s, "w")
        s.add(Alert(watch_id=watch.id, event_id=event.id, channel_id=1, status="sent"))
    async with sdb.session() as s:
        first = (await show_event(s, 0, event.id)).event.sources[0]
        new_id = await split_event(s, 0, event.id, first.entry_id, "admin")
    async with sdb.session() as s:
        old = (await show_event(s, 0, event.id)).event
        new = (await show_event(s, 0, new_id)).event
        assert [src.feed_name for src in old.sources] == ["B", "C"]
        assert old.occurred_at == NOW - timedelta(hours=2)  # recomputed: earliest remaining
        assert [src.feed_name for src in new.sources] == ["A"]
        assert new.occurred_at == NOW - timedelta(hours=3)
        assert new.watches == [] and old.watches == ["w"]
        assert (await s.scalar(select(Alert.dirty))) is True
        total = await s.scalar(select(func.count(Entry.id)))
        assert total == 3
        with pytest.raises(Conflict):
            await split_event(s, 0, new_id, first.entry_id, "admin")  # its only source
        with pytest.raises(NotFound):
            await split_event(s, 0, event.id, first.entry_id, "admin")  # not in this event


async def test_show_event_lists_dates_its_sources_mention(sdb: Database) -> None:
    async with sdb.session() as s:
        feed = await make_feed(s, "F", "https://f.example/rss")
        event = await make_story(
            s, [feed], "Summit to run from July 9 to 11", summary="A report dated July 2 said so."
        )
    async with sdb.session() as s:
        detail = await show_event(s, 0, event.id)
    spans = [(d.start.isoformat(), d.end.isoformat(), d.precision) for d in detail.dates]
    assert ("2025-07-09", "2025-07-11", "day") in spans
    assert ("2025-07-02", "2025-07-02", "day") in spans
