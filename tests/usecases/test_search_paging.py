"""Query search past one search_entries call (MAX_LIMIT), ties included; capped pages."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from tests.usecases.factories import NOW, make_feed
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Event
from timeline.storage.search import MAX_LIMIT
from timeline.usecases import _query
from timeline.usecases.timeline import list_timeline

COUNT = MAX_LIMIT + 60


async def _many(sdb: Database) -> None:
    async with sdb.session() as s:
        feed = await make_feed(s, "Wire", "https://wire.example/rss")
        await s.execute(
            insert(Event),
            [
                {"id": i + 1, "guild_id": 0, "title": f"drone story {i}", "occurred_at": NOW}
                for i in range(COUNT)
            ],
        )
        # Three entries share each instant, so batch boundaries fall inside ties.
        await s.execute(
            insert(Entry),
            [
                {
                    "feed_id": feed.id,
                    "event_id": i + 1,
                    "key": f"k{i}",
                    "title": f"drone story {i}",
                    "summary": "",
                    "tags": [],
                    "published_at": NOW - timedelta(minutes=i // 3),
                    "first_seen_at": NOW,
                }
                for i in range(COUNT)
            ],
        )


async def test_search_pages_past_max_limit_without_losing_ties(sdb: Database) -> None:
    await _many(sdb)
    async with sdb.session() as s:
        parsed = _query.parse("drone", {})
        hits = await _query.search(s, parsed, guild_ids=[0], since=None, until=None, limit=5000)
        assert len(hits) == COUNT
        assert len({h.entry_id for h in hits}) == COUNT
        times = [h.published_at for h in hits]
        assert times == sorted(times, reverse=True)
        partial = await _query.search(
            s, parsed, guild_ids=[0], since=None, until=None, limit=MAX_LIMIT + 7
        )
        assert len(partial) == MAX_LIMIT + 7


async def test_a_capped_query_page_says_so(sdb: Database) -> None:
    await _many(sdb)
    async with sdb.session() as s:
        small = await list_timeline(s, 0, query="drone", search_cap=30, limit=5)
        assert small.capped and small.total == 30 and len(small.events) == 5
        full = await list_timeline(s, 0, query="drone", search_cap=5000, limit=5)
        assert not full.capped and full.total == COUNT
