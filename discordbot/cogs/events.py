"""`/event show|note|merge|split`: one event in full, notes on it, and fixing the clustering.

Merging and splitting change what everyone sees, so they are re-checked for admin rights on
the server (`admin_check`); showing and annotating are for every member.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import format_dt

from discordbot.checks import admin_check
from discordbot.render import (
    DESCRIPTION_LIMIT,
    FIELD_VALUE_LIMIT,
    FIELDS_LIMIT,
    TITLE_LIMIT,
    cut,
    discord_len,
    escape,
    fit_embed,
    no_pings,
    safe_url,
    storyline_line,
)
from discordbot.views import actor, guild_of
from timeline.usecases import events as event_svc
from timeline.usecases.views import DateView, EventDetail, NoteView, SourceView

if TYPE_CHECKING:
    from discordbot.bot import TimelineBot


EventId = app_commands.Range[int, 1, 2**53 - 1]
EMBED_COLOUR = discord.Colour.dark_teal()
MAX_SOURCE_FIELDS = 4
MAX_NOTE_CHARS = 300


def _source_line(source: SourceView, event_title: str) -> str:
    name = cut(escape(source.feed_name) or "?", 60)
    link = safe_url(source.link)
    label = f"[{name}]({link})" if link and discord_len(link) <= 400 else name
    line = f"{label} · {format_dt(source.published_at, 'f')} · source `{source.entry_id}`"
    if source.title.strip() and source.title.strip() != event_title.strip():
        line += "\n" + cut(escape(source.title), 120)
    if source.brief is not None:
        line += "\n" + (
            f"adds: ‘{cut(escape(source.brief), 300)}’" if source.brief else "adds nothing new"
        )
    return line


def _pack(lines: list[str], limit: int = FIELD_VALUE_LIMIT) -> list[str]:
    """Group lines into field values of at most `limit` characters each."""
    values: list[str] = []
    current = ""
    for line in lines:
        line = cut(line, limit)
        candidate = f"{current}\n{line}" if current else line
        if discord_len(candidate) > limit:
            values.append(current)
            current = line
        else:
            current = candidate
    if current:
        values.append(current)
    return values


def _date_line(d: DateView) -> str:
    span = d.start.isoformat() if d.start == d.end else f"{d.start} – {d.end}"
    return f"{span} ({d.precision}): “{cut(escape(d.phrase), 80)}”"


def _note_line(n: NoteView) -> str:
    author = cut(escape(n.author), 60)
    return f"**{author}** · {format_dt(n.created_at, 'R')}: {cut(escape(n.text), MAX_NOTE_CHARS)}"


def event_embed(detail: EventDetail) -> discord.Embed:
    """Render an event with its sources, watches, mentioned dates and notes."""
    event = detail.event
    lines = [f"Event `#{event.id}` · {format_dt(event.occurred_at, 'f')}"]
    if event.manual:
        lines.append("Added by hand (no feed carried it).")
    if detail.storyline is not None:
        lines.append(storyline_line(detail.storyline))
    embed = discord.Embed(
        title=cut(escape(event.title) or "(untitled)", TITLE_LIMIT),
        url=safe_url(event.link),
        description=cut("\n".join(lines), DESCRIPTION_LIMIT),
        colour=EMBED_COLOUR,
        timestamp=event.occurred_at,
    )
    if event.sources:
        values = _pack([_source_line(s, event.title) for s in event.sources])
        shown = values[:MAX_SOURCE_FIELDS]
        for i, value in enumerate(shown):
            name = f"Sources ({len(event.sources)})" if i == 0 else "Sources (continued)"
            embed.add_field(name=name, value=value, inline=False)
        if len(values) > len(shown):
            embed.add_field(
                name="More sources",
                value=f"…see `/export` for all {len(event.sources)} sources.",
                inline=False,
            )
    if event.watches:
        watches = ", ".join(escape(w) for w in event.watches)
        embed.add_field(name="Watches", value=cut(watches, FIELD_VALUE_LIMIT), inline=False)
    if detail.dates:
        (value, *_) = _pack([_date_line(d) for d in detail.dates]) or [""]
        embed.add_field(name="Dates mentioned", value=value, inline=False)
    if detail.notes:
        # Newest notes matter most when there are too many to show.
        values = _pack([_note_line(n) for n in reversed(detail.notes)])
        room = FIELDS_LIMIT - len(embed.fields)
        for i, value in enumerate(values[: max(room, 0)]):
            name = f"Notes ({len(detail.notes)}, newest first)" if i == 0 else "Notes (older)"
            embed.add_field(name=name, value=value, inline=False)
    embed.set_footer(text="Split a source out: /event split · merge events: /event merge")
    return fit_embed(embed)


class EventsCog(commands.Cog, name="Events"):
    """Look at one event, annotate it, merge or split events."""

    event = app_commands.Group(
        name="event", description="One event: show, annotate, merge, split", guild_only=True
    )

    def __init__(self, bot: TimelineBot) -> None:
        self.bot = bot

    @event.command(name="show", description="An event with all its sources, watches and notes")
    @app_commands.describe(id="The event number (the #id on the timeline and in alerts)")
    async def show(self, interaction: discord.Interaction[Any], id: EventId) -> None:
        """Show one event in full."""
        guild_id = guild_of(interaction)
        # A handful of indexed reads: answered directly, so "no such event" stays private.
        async with self.bot.db.session() as session:
            detail = await event_svc.show_event(session, guild_id, id)
        await interaction.response.send_message(
            embed=event_embed(detail), allowed_mentions=no_pings()
        )

    @event.command(name="note", description="Add a note to an event")
    @app_commands.describe(
        id="The event number (the #id on the timeline and in alerts)",
        text="The note (up to 2000 characters)",
    )
    async def note(
        self,
        interaction: discord.Interaction[Any],
        id: EventId,
        text: app_commands.Range[str, 1, 2000],
    ) -> None:
        """Attach a note to an event."""
        guild_id = guild_of(interaction)
        who = actor(interaction)
        async with self.bot.db.session() as session:
            note = await event_svc.add_note(session, guild_id, id, text, who)
        await interaction.response.send_message(
            cut(f"Note added to event `#{id}`: {escape(note.text)}", 2000),
            allowed_mentions=no_pings(),
        )

    @event.command(name="merge", description="Admins: merge one event into another")
    @app_commands.describe(
        keep="The event that stays (gets the other's sources, alerts and notes)",
        other="The event that is merged into it and disappears",
    )
    @admin_check()
    async def merge(
        self, interaction: discord.Interaction[Any], keep: EventId, other: EventId
    ) -> None:
        """Merge `other` into `keep`."""
        guild_id = guild_of(interaction)
        who = actor(interaction)
        # One short transaction, answered directly so a refusal ("cannot merge") stays private.
        async with self.bot.db.session() as session:
            view = await event_svc.merge_events(session, guild_id, keep, other, who)
        await interaction.response.send_message(
            cut(
                f"Merged event `#{other}` into `#{keep}` ({escape(view.title)}): it now has "
                f"{len(view.sources)} source{'s' if len(view.sources) != 1 else ''}.",
                2000,
            ),
            allowed_mentions=no_pings(),
        )

    @event.command(name="split", description="Admins: move one source out into a new event")
    @app_commands.describe(
        id="The event the source belongs to",
        source="The source number (shown as `source N` by /event show)",
    )
    @admin_check()
    async def split(
        self, interaction: discord.Interaction[Any], id: EventId, source: EventId
    ) -> None:
        """Split one source out of an event."""
        guild_id = guild_of(interaction)
        who = actor(interaction)
        async with self.bot.db.session() as session:
            new_id = await event_svc.split_event(session, guild_id, id, source, who)
        await interaction.response.send_message(
            f"Moved source `{source}` out of event `#{id}` into the new event `#{new_id}`.",
            allowed_mentions=no_pings(),
        )


async def setup(bot: TimelineBot) -> None:
    """Load the event commands."""
    await bot.add_cog(EventsCog(bot))
