"""Shared fixtures for the query-language tests: a migrated SQLite file and an entry writer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Entry, Feed

BASE_TIME = datetime(2024, 7, 9, 12, 0, tzinfo=UTC)


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """Yield a Database on a fresh SQLite file upgraded to head."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'timeline.db'}"
    await upgrade_async(url)
    db = Database(url)
    try:
        yield db
    finally:
        await db.dispose()


async def add_feed(db: Database, name: str, url: str, guild_id: int = 0) -> int:
    """Insert a feed and return its id."""
    async with db.session() as session:
        feed = Feed(name=name, url=url, guild_id=guild_id)
        session.add(feed)
        await session.flush()
        return feed.id


async def add_entries(
    db: Database, feed_id: int, items: Sequence[tuple[str, str]], start: int = 0
) -> list[int]:
    """Insert (title, summary) entries one minute apart (later items newer); return ids."""
    ids = []
    async with db.session() as session:
        for i, (title, summary) in enumerate(items):
            entry = Entry(
                feed_id=feed_id,
                key=f"k{start + i}",
                title=title,
                summary=summary,
                link=f"https://example.test/{start + i}",
                published_at=BASE_TIME + timedelta(minutes=start + i),
            )
            session.add(entry)
            await session.flush()
            ids.append(entry.id)
    return ids
