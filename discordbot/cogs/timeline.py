"""`/timeline show` (the paged timeline) and `/timeline add` (an event no feed carried).

`/timeline` is a command group, so the listing is its `show` subcommand: Discord does not let
a group be invoked on its own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import format_dt

from discordbot.autocomplete import feed_names, watch_names
from discordbot.render import (
    DESCRIPTION_LIMIT,
    TITLE_LIMIT,
    cut,
    discord_len,
    escape,
    no_pings,
    safe_url,
)
from discordbot.views import (
    PAGE_TIMEOUT,
    Page,
    Paginator,
    actor,
    blank,
    guild_of,
    time_range,
)
from timeline.domain.errors import NotFound, TimelineError
from timeline.domain.query import parse_query
from timeline.domain.typed_dates import parse_when
from timeline.usecases import aliases as alias_svc
from timeline.usecases import events as event_svc
from timeline.usecases import settings as settings_svc
from timeline.usecases import watches as watch_svc
from timeline.usecases.timeline import list_timeline, source_feed_ids
from timeline.usecases.views import EventView, TimelinePage

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from discordbot.bot import TimelineBot


PAGE_SIZE = 10
# Room for the footer margin and up to a day heading per event.
LINE_BUDGET = (DESCRIPTION_LIMIT - 100 - PAGE_SIZE * 30) // PAGE_SIZE
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EMBED_COLOUR = discord.Colour.dark_teal()


# --- rendering ----------------------------------------------------------------------------------


def event_line(event: EventView, width: int = LINE_BUDGET) -> str:
    """Render one event as two short lines: id, time, linked title; sources, watches, notes."""
    title = cut(escape(event.title) or "(untitled)", 150)
    when = format_dt(event.occurred_at, "f")
    names = list(dict.fromkeys(s.feed_name for s in event.sources))
    origin = "manual entry" if event.manual and not names else ", ".join(names) or "no source"
    details = [cut(escape(origin) or "?", 100)]
    if event.watches:
        details.append("watches: " + cut(", ".join(escape(w) for w in event.watches), 80))
    if event.note_count:
        details.append(f"{event.note_count} note{'s' if event.note_count != 1 else ''}")
    tail = "\n" + " · ".join(details)
    plain = f"`#{event.id}` {when} {title}"
    link = safe_url(event.link)
    head = f"`#{event.id}` {when} [{title}]({link})" if link else plain
    if discord_len(head) > width - 40:
        # The link is the long part: drop it before cutting the words.
        head = plain
    return cut(head + cut(tail, width - discord_len(head)), width)


def day_heading(day: date) -> str:
    """Head a day's events: `**Wednesday 2025-07-09**` (English, whatever the host locale)."""
    return f"**{WEEKDAYS[day.weekday()]} {day.isoformat()}**"


def timeline_embed(
    page: TimelinePage, heading: str, page_size: int = PAGE_SIZE, zone: tzinfo = UTC
) -> discord.Embed:
    """Render one page of the timeline as an embed, its events under day headings.

    The days are the guild's (`zone`); each time is a Discord timestamp, which every reader
    sees in their own zone. The zone is named in the footer when it is not UTC.
    """
    blocks: list[str] = []
    day: date | None = None
    for event in page.events:
        local = event.occurred_at.astimezone(zone).date()
        line = event_line(event)
        if local != day:
            day = local
            line = f"{day_heading(day)}\n{line}"
        blocks.append(line)
    embed = discord.Embed(
        title=cut(heading, TITLE_LIMIT),
        description=cut("\n\n".join(blocks), DESCRIPTION_LIMIT) or "No events on this page.",
        colour=EMBED_COLOUR,
    )
    pages = max(1, -(-page.total // page_size))
    number = page.offset // page_size + 1
    first = page.offset + 1 if page.events else 0
    last = page.offset + len(page.events)
    more = "+" if page.capped else ""
    footer = f"Events {first}–{last} of {page.total}{more} · page {number}/{pages}{more}"
    if page.capped:
        footer += " · only the newest matches were searched"
    if str(zone) != "UTC":
        footer += f" · days in {zone}"
    embed.set_footer(text=footer)
    return embed


def heading(query: str | None, watch: str | None, source: str | None) -> str:
    """Describe the filters in the embed title."""
    parts = []
    if query:
        parts.append(query)
    if watch:
        parts.append(f"watch: {watch}")
    if source:
        parts.append(f"source: {source}")
    # Titles render markdown only partly; keep them plain but free of pings and newlines.
    text = " · ".join(" ".join(p.split()) for p in parts)
    return "Timeline" + (f" — {escape(text)}" if text else "")


# --- shared checks -------------------------------------------------------------------------------


async def alias_map(session: AsyncSession, guild_id: int) -> dict[str, str]:
    """Return the aliases the guild sees, as the query parser wants them."""
    return {a.name: a.query for a in await alias_svc.list_aliases(session, guild_id)}


async def check_query(session: AsyncSession, guild_id: int, query: str) -> dict[str, str]:
    """Parse `query` with the guild's aliases (raises BadQuery with the column); return them."""
    aliases = await alias_map(session, guild_id)
    parse_query(query, aliases)
    return aliases


async def check_watch(session: AsyncSession, guild_id: int, watch: str) -> None:
    """Raise NotFound unless the guild sees a watch named `watch`."""
    names = await watch_svc.watch_names(session, guild_id, watch, limit=1000)
    if not any(n.casefold() == watch.casefold() for n in names):
        raise NotFound(f"no watch named {watch!r} on this server (see /watch list)")


# --- the cog -------------------------------------------------------------------------------------


class TimelineCog(commands.Cog, name="Timeline"):
    """Browse the timeline and add events to it."""

    timeline = app_commands.Group(
        name="timeline", description="The team's timeline of events", guild_only=True
    )

    def __init__(self, bot: TimelineBot) -> None:
        self.bot = bot
        self.page_timeout = PAGE_TIMEOUT

    @timeline.command(name="show", description="Events newest first, 10 a page")
    @app_commands.describe(
        query='Only events whose stories match, e.g. "NATO communique" or dual-use',
        since="Oldest event time: 2025-07-09, 7d, 24h, yesterday",
        until="Newest event time (a date includes that whole day)",
        watch="Only events that alerted this watch",
        source="Only events with a story from this feed (name or domain)",
    )
    @app_commands.autocomplete(watch=watch_names, source=feed_names)
    async def show(
        self,
        interaction: discord.Interaction[Any],
        query: app_commands.Range[str, 1, 1000] | None = None,
        since: app_commands.Range[str, 1, 64] | None = None,
        until: app_commands.Range[str, 1, 64] | None = None,
        watch: app_commands.Range[str, 1, 100] | None = None,
        source: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        """Show the timeline with Previous/Next buttons for the member who asked."""
        guild_id = guild_of(interaction)
        query, watch, source = blank(query), blank(watch), blank(source)
        # Validate before deferring, so a mistake is answered privately, not in the channel.
        aliases: dict[str, str] | None = None
        async with self.bot.db.session() as session:
            zone = await settings_svc.guild_zone(
                session, guild_id, self.bot.settings.discord.timezone
            )
            # A date means that day where the guild is.
            start, end = time_range(since, until, zone=zone)
            if query:
                aliases = await check_query(session, guild_id, query)
            if watch:
                await check_watch(session, guild_id, watch)
            if source:
                await source_feed_ids(session, guild_id, source)
        await interaction.response.defer(thinking=True)
        title = heading(query, watch, source)

        async def render(index: int) -> Page:
            async with self.bot.db.session() as session:
                page = await list_timeline(
                    session,
                    guild_id,
                    query=query,
                    since=start,
                    until=end,
                    watch=watch,
                    source=source,
                    limit=PAGE_SIZE,
                    offset=index * PAGE_SIZE,
                    aliases=aliases,
                )
            has_next = page.offset + len(page.events) < page.total
            return Page(timeline_embed(page, title, zone=zone), has_next, len(page.events))

        first = await render(0)
        if not first.items:
            filtered = query or watch or source or start or end
            await interaction.followup.send(
                "No events match." if filtered else "The timeline is empty.",
                allowed_mentions=no_pings(),
            )
            return
        view = Paginator(
            render, interaction.user.id, first=first, timeout=self.page_timeout, name="timeline"
        )
        view.message = await interaction.followup.send(
            embed=first.embed, view=view, wait=True, allowed_mentions=no_pings()
        )

    @timeline.command(name="add", description="Add an event no feed carried")
    @app_commands.describe(
        date="When: 2025-07-09, 2025-07-09T14:00, yesterday, 3h (server time zone, unless +02:00 or Z)",
        title="What happened",
        url="A link about it (http or https)",
    )
    async def add(
        self,
        interaction: discord.Interaction[Any],
        date: app_commands.Range[str, 1, 64],
        title: app_commands.Range[str, 1, 500],
        url: app_commands.Range[str, 1, 2048] | None = None,
    ) -> None:
        """Record a manual event on the guild's timeline."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            zone = await settings_svc.guild_zone(
                session, guild_id, self.bot.settings.discord.timezone
            )
        try:
            when = parse_when(date, datetime.now(UTC), zone=zone)
        except TimelineError as exc:
            raise TimelineError(f"date: {getattr(exc, 'message', exc)}") from None
        who = actor(interaction)
        # One short insert: well inside the 3 s Discord allows before the first answer.
        async with self.bot.db.session() as session:
            view = await event_svc.add_manual_event(session, guild_id, when, title, url, who)
        text = (
            f"Added event `#{view.id}` for {format_dt(view.occurred_at, 'f')}: "
            f"{cut(escape(view.title), 300)}"
        )
        await interaction.response.send_message(cut(text, 2000), allowed_mentions=no_pings())


async def setup(bot: TimelineBot) -> None:
    """Load the timeline commands."""
    await bot.add_cog(TimelineCog(bot))
