"""Row builders for the service tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from timeline.storage.models import Entry, Event, Feed

NOW = datetime(2025, 7, 10, 12, 0, tzinfo=UTC)


async def make_feed(
    session: AsyncSession, name: str, url: str, guild_id: int = 0, origin: str = "config"
) -> Feed:
    """Insert a feed row."""
    feed = Feed(guild_id=guild_id, name=name, url=url, origin=origin)
    session.add(feed)
    await session.flush()
    return feed


async def make_story(
    session: AsyncSession,
    feeds: list[Feed],
    title: str,
    *,
    hours_ago: float = 1,
    summary: str = "",
    link: str | None = None,
    step_minutes: float = 30,
) -> Event:
    """Insert one event with one entry per feed (the first published earliest)."""
    published = NOW - timedelta(hours=hours_ago)
    event = Event(guild_id=feeds[0].guild_id, title=title, link=link, occurred_at=published)
    session.add(event)
    await session.flush()
    for i, feed in enumerate(feeds):
        session.add(
            Entry(
                feed_id=feed.id,
                event_id=event.id,
                key=f"{title}-{feed.id}-{i}",
                title=title,
                summary=summary,
                link=link or f"{feed.url.rstrip('/')}/{event.id}/{i}",
                published_at=published + timedelta(minutes=step_minutes * i),
            )
        )
    await session.flush()
    return event
