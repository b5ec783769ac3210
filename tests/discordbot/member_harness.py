"""Run TimelineBot with only the team members' cogs against the emulator, plus row builders.

The bot loads exactly the cog modules a test names (other people's cogs are tested by their
own suites), syncs them to the emulated guild and answers like the real thing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from discordbot.bot import TimelineBot
from tests.discord_emulator.records import StoredMessage
from tests.discordbot.harness import Harness
from tests.discordbot.outbox_seed import T0, Seed, feed
from timeline.app.config import Settings
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Entry, Event, Watch

MEMBER_COGS = (
    "discordbot.cogs.timeline",
    "discordbot.cogs.events",
    "discordbot.cogs.search",
    "discordbot.cogs.export",
    "discordbot.cogs.status",
    "discordbot.cogs.chart",
)


class MemberBot(TimelineBot):
    """A TimelineBot that loads the named cog modules instead of a whole package."""

    def __init__(
        self, settings: Settings, db: Database, extensions: Sequence[str], **options: Any
    ) -> None:
        super().__init__(settings, db, cogs_package=None, deliver_alerts=False, **options)
        self.extensions_to_load = tuple(extensions)

    async def setup_hook(self) -> None:
        """Load the named cogs, then do what TimelineBot does (sync the tree)."""
        for name in self.extensions_to_load:
            await self.load_extension(name)
        await super().setup_hook()


@contextlib.asynccontextmanager
async def member_bot(
    h: Harness, extensions: Sequence[str] = MEMBER_COGS, **options: Any
) -> AsyncIterator[MemberBot]:
    """Run a MemberBot on the harness's emulator and database until the block ends."""
    bot = MemberBot(h.settings(), h.db, extensions, guild_ready_timeout=0.05, **options)
    async with h.emu.run_bot(bot):
        yield bot


async def story(
    db: Database,
    title: str,
    *,
    sources: Sequence[str] = ("Bloomberg",),
    at: datetime = T0,
    summary: str = "",
    guild_id: int = 0,
    watches: Sequence[int] = (),
    link: str | None = None,
) -> int:
    """Write an event with one entry per source (a minute apart) and its alerts; return its id."""

    seed = Seed()
    feed_ids = [await feed(db, seed, name) for name in sources]
    async with db.session() as session:
        event = Event(
            guild_id=guild_id,
            title=title,
            link=link or f"https://{sources[0].lower()}.example/{abs(hash(title))}",
            occurred_at=at,
        )
        session.add(event)
        await session.flush()
        for i, (name, feed_id) in enumerate(zip(sources, feed_ids, strict=True)):
            session.add(
                Entry(
                    feed_id=feed_id,
                    event_id=event.id,
                    key=f"{name}:{event.id}",
                    title=title,
                    summary=summary,
                    link=f"https://{name.lower()}.example/{event.id}",
                    published_at=at + timedelta(minutes=i),
                )
            )
        for watch_id in watches:
            session.add(
                Alert(
                    watch_id=watch_id,
                    event_id=event.id,
                    channel_id=1,
                    status="sent",
                    matched_terms=[],
                )
            )
        await session.flush()
        return event.id


async def make_watch(db: Database, name: str, query: str, channel_id: int = 1) -> int:
    """Write a config-scope watch and return its id."""
    async with db.session() as session:
        row = Watch(name=name, query=query, channel_id=channel_id)
        session.add(row)
        await session.flush()
        return row.id


def event_ids(message: StoredMessage) -> list[int]:
    """Return the `#id`s listed in a timeline page, in order."""

    (embed,) = message.embeds
    return [int(m) for m in re.findall(r"`#(\d+)`", embed.get("description") or "")]


def button(message: StoredMessage, label: str) -> dict[str, Any]:
    """Return the button with this label."""
    for b in message.buttons():
        if b.get("label") == label:
            return b
    raise AssertionError(f"no button {label!r} in {message.buttons()}")
