"""Write feeds, events, entries, watches and outbox alerts straight into a test database.

Ingest is someone else's part; these helpers put rows in the shape ingest writes them so the
outbox and delivery can be tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Alert, Entry, Event, Feed, Watch

T0 = datetime(2024, 7, 9, 12, 0, tzinfo=UTC)


async def migrated_db(tmp_path: Path, name: str = "timeline.db") -> Database:
    """Create a real SQLite file upgraded to head and open it."""
    url = f"sqlite:///{tmp_path / name}"
    await upgrade_async(url)
    return Database(url)


@dataclass
class Seed:
    """Handles on what was written, for assertions."""

    feeds: dict[str, int] = field(default_factory=dict)
    watches: dict[str, int] = field(default_factory=dict)


async def feed(db: Database, seed: Seed, name: str) -> int:
    """Return the id of feed `name`, creating it."""
    if name in seed.feeds:
        return seed.feeds[name]
    async with db.session() as session:
        existing = await session.scalar(select(Feed.id).where(Feed.name == name))
        if existing is not None:
            seed.feeds[name] = existing
            return existing
        row = Feed(name=name, url=f"https://{name.lower()}.example/rss")
        session.add(row)
        await session.flush()
        seed.feeds[name] = row.id
    return seed.feeds[name]


async def watch(
    db: Database, seed: Seed, name: str, channel_id: int, role_id: int | None = None
) -> int:
    """Return the id of watch `name`, creating it."""
    if name in seed.watches:
        return seed.watches[name]
    async with db.session() as session:
        row = Watch(name=name, query=name, channel_id=channel_id, role_id=role_id)
        session.add(row)
        await session.flush()
        seed.watches[name] = row.id
    return seed.watches[name]


async def event(
    db: Database,
    seed: Seed,
    title: str,
    *,
    source: str = "Bloomberg",
    link: str | None = "https://bloomberg.example/a",
    summary: str = "",
    occurred_at: datetime = T0,
) -> int:
    """Write an event with its first source entry and return the event id."""
    feed_id = await feed(db, seed, source)
    async with db.session() as session:
        ev = Event(title=title, link=link, occurred_at=occurred_at)
        session.add(ev)
        await session.flush()
        session.add(
            Entry(
                feed_id=feed_id,
                event_id=ev.id,
                key=f"{source}:{ev.id}",
                title=title,
                summary=summary,
                link=link,
                published_at=occurred_at,
            )
        )
        return ev.id


async def add_source(
    db: Database,
    seed: Seed,
    event_id: int,
    source: str,
    *,
    link: str = "https://reuters.example/a",
    at: datetime = T0 + timedelta(minutes=5),
) -> None:
    """Join another outlet's story to an event and mark its sent alerts dirty, as ingest does."""
    feed_id = await feed(db, seed, source)
    async with db.session() as session:
        ev = await session.get(Event, event_id)
        assert ev is not None
        session.add(
            Entry(
                feed_id=feed_id,
                event_id=event_id,
                key=f"{source}:{event_id}",
                title=ev.title,
                link=link,
                published_at=at,
            )
        )
        for alert in (await session.scalars(select(Alert).where(Alert.event_id == event_id))).all():
            if alert.status == "sent":
                alert.dirty = True


async def alert(
    db: Database, watch_id: int, event_id: int, channel_id: int, terms: list[str] | None = None
) -> int:
    """Write a pending outbox row and return its id."""
    async with db.session() as session:
        row = Alert(
            watch_id=watch_id,
            event_id=event_id,
            channel_id=channel_id,
            status="pending",
            matched_terms=terms or [],
        )
        session.add(row)
        await session.flush()
        return row.id


async def alert_rows(db: Database) -> list[Alert]:
    """Read every outbox row, by id."""
    async with db.session() as session:
        return list((await session.scalars(select(Alert).order_by(Alert.id))).all())
