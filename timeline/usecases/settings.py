"""A guild's own settings: its time zone (IANA name), over the config file's default.

Storage stays UTC everywhere; the zone only decides what a day is for the people reading
(day headings, `since 2025-07-09`, the digest's cron, chart buckets, export headings).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.app.config import timezone_problem
from timeline.domain.errors import BadQuery
from timeline.storage.models import GLOBAL_SCOPE, GuildSettings, Watch
from timeline.usecases._common import clean_text

log = logging.getLogger(__name__)

MAX_ZONE = 64
MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices


@dataclass(frozen=True, slots=True)
class SettingsView:
    """A guild's settings as the commands show them."""

    guild_id: int
    timezone: str
    # "guild" when the guild chose it, "config" when it is the config file's default.
    origin: str
    updated_by: str | None = None
    updated_at: datetime | None = None


@functools.cache
def _zone_names() -> tuple[str, ...]:
    # available_timezones() walks the zone database on every call: once per process is enough.
    return tuple(sorted(available_timezones()))


def check_timezone(name: str) -> str:
    """Return `name` stripped if zoneinfo knows it as an IANA zone, else raise BadQuery."""
    value = clean_text(name, "time zone", MAX_ZONE)
    reason = timezone_problem(value)
    if reason:
        raise BadQuery(f"time zone {reason}")
    return value


def zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo for a checked zone name."""
    return ZoneInfo(check_timezone(name))


def timezone_names(prefix: str = "", limit: int = MAX_CHOICES) -> list[str]:
    """Return IANA zone names for autocomplete: names starting with `prefix`, then containing it."""
    wanted = prefix.strip().casefold().replace(" ", "_")
    names = _zone_names()
    if not wanted:
        return list(names[:limit])
    starts = [n for n in names if n.casefold().startswith(wanted)]
    inside = [n for n in names if wanted in n.casefold() and n not in starts]
    return (starts + inside)[:limit]


async def show_settings(
    session: AsyncSession, guild_id: int, default_timezone: str
) -> SettingsView:
    """Return the guild's settings: its own time zone, or the config file's default."""
    row = await session.get(GuildSettings, guild_id) if guild_id != GLOBAL_SCOPE else None
    if row is None or not row.timezone or timezone_problem(row.timezone):
        if row is not None and row.timezone and timezone_problem(row.timezone):
            # A zone the tz database no longer has (renamed upstream): fall back, say so once.
            log.warning(
                "guild %s has time zone %r, which zoneinfo does not know; using %r",
                guild_id,
                row.timezone,
                default_timezone,
                extra={"guild_id": guild_id},
            )
        return SettingsView(guild_id, default_timezone, "config")
    return SettingsView(guild_id, row.timezone, "guild", row.updated_by, row.updated_at)


async def guild_zone(session: AsyncSession, guild_id: int, default_timezone: str) -> ZoneInfo:
    """Return the time zone the guild reads its timeline in."""
    return ZoneInfo((await show_settings(session, guild_id, default_timezone)).timezone)


async def set_timezone(
    session: AsyncSession, guild_id: int, name: str, actor: str, default_timezone: str
) -> SettingsView:
    """Set the guild's time zone (an IANA name such as Europe/Paris)."""
    if guild_id == GLOBAL_SCOPE:
        raise BadQuery(
            "guild 0 is the config file's scope: set [discord] timezone in the config file, "
            "or give --guild ID"
        )
    value = check_timezone(name)
    row = await session.get(GuildSettings, guild_id)
    if row is None:
        row = GuildSettings(guild_id=guild_id)
        session.add(row)
    before = row.timezone
    row.timezone = value
    row.updated_by = actor[:100]
    await session.flush()
    log.info(
        "time zone %r -> %r set by %s",
        before,
        value,
        actor,
        extra={"guild_id": guild_id, "actor": actor},
    )
    return await show_settings(session, guild_id, default_timezone)


async def channel_zone(session: AsyncSession, channel_id: int, default_timezone: str) -> ZoneInfo:
    """Return the zone of the guild whose watches alert `channel_id` (the config default when
    only config-file watches, or none, do)."""
    guilds = (
        await session.scalars(
            select(Watch.guild_id)
            .where(Watch.channel_id == channel_id, Watch.guild_id != GLOBAL_SCOPE)
            .distinct()
            .order_by(Watch.guild_id)
        )
    ).all()
    if len(guilds) > 1:
        log.warning("channel %s has watches of several guilds %s", channel_id, list(guilds))
    if not guilds:
        return ZoneInfo(check_timezone(default_timezone))
    return await guild_zone(session, guilds[0], default_timezone)
