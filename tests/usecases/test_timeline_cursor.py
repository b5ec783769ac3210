"""Cursor paging of the timeline (the web page's): every event once, in order, ties included."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from tests.usecases.factories import NOW, make_feed, make_story
from timeline.domain.errors import BadQuery
from timeline.storage.engine import Database
from timeline.storage.models import Event, Storyline
from timeline.usecases.events import mentioned_dates
from timeline.usecases.timeline import event_views, timeline_page


async def _events(sdb: Database, count: int) -> None:
    async with sdb.session() as s:
        # Three events share each instant, so page boundaries fall inside ties.

        await s.execute(
            insert(Event),
            [
                {
                    "id": i + 1,
                    "guild_id": 0,
                    "title": f"story {i}",
                    "occurred_at": NOW - timedelta(minutes=i // 3),
                }
                for i in range(count)
            ],
        )


@pytest.mark.parametrize("oldest_first", [False, True])
async def test_cursor_pages_cover_every_event_once_in_order(
    sdb: Database, oldest_first: bool
) -> None:
    await _events(sdb, 50)
    seen: list[int] = []
    cursor = None
    async with sdb.session() as s:
        while True:
            page = await timeline_page(s, 7, limit=7, cursor=cursor, oldest_first=oldest_first)
            seen += [e.id for e in page.events]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert len(seen) == 50 and len(set(seen)) == 50
    expected = list(range(1, 51)) if not oldest_first else list(range(50, 0, -1))
    # Newest first: (time desc, id desc); ties share a minute, so ids go 3,2,1,6,5,4,...
    keyed = sorted(
        expected, key=lambda i: ((i - 1) // 3, -i) if not oldest_first else (-((i - 1) // 3), i)
    )
    assert seen == keyed


async def test_cursor_page_filters_by_storyline_and_guild(sdb: Database) -> None:
    async with sdb.session() as s:
        mine = await make_feed(s, "Mine", "https://mine.example/rss", guild_id=7)
        theirs = await make_feed(s, "Theirs", "https://theirs.example/rss", guild_id=8)
        story = Storyline(guild_id=7, title="Summit")
        s.add(story)
        await s.flush()
        a = await make_story(s, [mine], "summit opens", hours_ago=3)
        a.storyline_id = story.id
        await make_story(s, [mine], "unrelated", hours_ago=2)
        await make_story(s, [theirs], "other guild summit", hours_ago=1)
    async with sdb.session() as s:
        page = await timeline_page(s, 7, storyline_id=story.id)
        assert [e.title for e in page.events] == ["summit opens"]
        page = await timeline_page(s, 7, query="summit")
        assert [e.title for e in page.events] == ["summit opens"]
        assert page.next_cursor is None


async def test_bad_cursor_and_limit_are_bad_queries(sdb: Database) -> None:
    async with sdb.session() as s:
        with pytest.raises(BadQuery, match="cursor"):
            await timeline_page(s, 7, cursor="not-a-cursor")
        with pytest.raises(BadQuery, match="limit"):
            await timeline_page(s, 7, limit=0)


async def test_mentioned_dates_only_for_the_guilds_events(sdb: Database) -> None:

    async with sdb.session() as s:
        mine = await make_feed(s, "Mine", "https://mine.example/rss", guild_id=7)
        theirs = await make_feed(s, "Theirs", "https://theirs.example/rss", guild_id=8)
        a = await make_story(s, [mine], "Summit", summary="Leaders meet on July 11, 2025.")
        b = await make_story(s, [theirs], "Other", summary="Talks on July 12, 2025.")
    async with sdb.session() as s:
        views = await event_views(s, 8, [b]) + await event_views(s, 7, [a])
        found = await mentioned_dates(s, 7, views)
    assert set(found) == {a.id}
    assert [d.start.isoformat() for d in found[a.id]] == ["2025-07-11"]
