"""The search use case behind /search and `timeline-bot search`: scope, aliases, cursor pages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.usecases.factories import NOW, make_feed, make_story
from timeline.domain.errors import BadQuery
from timeline.storage.engine import Database
from timeline.storage.models import Alias
from timeline.usecases.search import check_search, decode_cursor, encode_cursor, search_stories


async def _seed(sdb: Database, n: int = 25) -> None:
    async with sdb.session() as s:
        reuters = await make_feed(s, "Reuters", "https://reuters.example/rss")
        theirs = await make_feed(s, "Their Blog", "https://two.example/rss", 2, "discord")
        mine = await make_feed(s, "My Blog", "https://three.example/rss", 3, "discord")
        for i in range(n):
            await make_story(s, [reuters], f"Drone report {i}", hours_ago=n - i)
        await make_story(s, [theirs], "Drone seen by guild two", hours_ago=0.5)
        await make_story(s, [mine], "Drone seen by guild three", hours_ago=0.25)
        await make_story(s, [reuters], "Harvest festival", hours_ago=0.1)
        s.add(Alias(guild_id=3, name="uav", query="drone OR UAV"))


async def _all_pages(sdb: Database, guild: int | None, text: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        async with sdb.session() as s:
            page = await search_stories(s, guild, text, limit=limit, cursor=cursor)
        pages.append([hit.title for hit in page.hits])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_pages_cover_every_hit_once_newest_first_in_the_guild_scope(sdb: Database) -> None:
    await _seed(sdb)
    pages = await _all_pages(sdb, 3, "@uav", limit=10)
    titles = [t for page in pages for t in page]
    assert [len(page) for page in pages] == [10, 10, 6]
    assert titles[0] == "Drone seen by guild three"  # its own feed, newest
    assert titles[1:] == [f"Drone report {i}" for i in reversed(range(25))]
    assert "Drone seen by guild two" not in titles  # another guild's feed
    everything = await _all_pages(sdb, None, "drone", limit=100)
    assert len(everything) == 1 and len(everything[0]) == 27


async def test_a_story_stored_meanwhile_does_not_shift_the_next_page(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        first = await search_stories(s, 0, "drone", limit=10)
    async with sdb.session() as s:
        reuters = await make_feed(s, "AP", "https://ap.example/rss")
        await make_story(s, [reuters], "Drone breaking news", hours_ago=0)
    async with sdb.session() as s:
        second = await search_stories(s, 0, "drone", limit=10, cursor=first.next_cursor)
    assert first.hits[-1].title == "Drone report 15"
    assert second.hits[0].title == "Drone report 14"  # not repeated, not skipped


async def test_bad_input_is_a_clear_error(sdb: Database) -> None:
    await _seed(sdb, n=2)
    async with sdb.session() as s:
        for text, cursor, limit, message in [
            ("", None, 10, "empty"),
            ("x" * 1001, None, 10, "longer than 1000"),
            ("drone (", None, 10, "column"),
            ("@uav", None, 10, "unknown alias"),  # guild 0 does not see guild 3's alias
            ("drone", "not-a-cursor", 10, "cursor is not valid"),
            ("drone", "!!!", 10, "cursor is not valid"),
            ("drone", None, 0, "limit"),
            ("drone", None, 101, "limit"),
        ]:
            with pytest.raises(BadQuery, match=message):
                await search_stories(s, 0, text, limit=limit, cursor=cursor)
        with pytest.raises(BadQuery, match="since must be before until"):
            await search_stories(s, 0, "drone", since=NOW, until=NOW - timedelta(days=1))
        assert await check_search(s, 3, " @uav ") == ("@uav", {"uav": "drone OR UAV"})


def test_cursors_round_trip() -> None:
    at = NOW - timedelta(microseconds=7)
    assert decode_cursor(encode_cursor(at, 42)) == (at, 42)
