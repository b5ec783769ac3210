"""`/story list|show|chart|export|rename|merge|split|detach`: storylines that follow a subject.

Every command turns Discord options into one call of :mod:`timeline.usecases.storylines` and
the result into an embed, a file or a one-line answer. Renaming, merging, splitting and
detaching change what everyone sees, so they are re-checked for admin rights on the server.
"""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import format_dt

from discordbot.checks import admin_check
from discordbot.render import (
    DESCRIPTION_LIMIT,
    FIELD_VALUE_LIMIT,
    TITLE_LIMIT,
    cut,
    escape,
    fit_embed,
    no_pings,
    safe_url,
)
from discordbot.views import actor, guild_of
from timeline.usecases import settings as settings_svc
from timeline.usecases import storylines as story_svc
from timeline.usecases.chart import render_png
from timeline.usecases.storylines import StorylineDetail, StorylineSummary
from timeline.usecases.views import EventView

if TYPE_CHECKING:
    from discordbot.bot import TimelineBot

log = logging.getLogger(__name__)

StoryId = app_commands.Range[int, 1, 2**53 - 1]
EventId = app_commands.Range[int, 1, 2**53 - 1]
EMBED_COLOUR = discord.Colour.dark_gold()
SHOW_EVENTS = 15


async def story_choices(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[int]]:
    """Suggest this guild's storylines by title or number (never raises)."""
    guild_id = interaction.guild_id
    db = getattr(interaction.client, "db", None)
    if guild_id is None or db is None:
        return []
    try:
        async with db.session() as session:
            rows = await story_svc.storyline_titles(session, guild_id, (current or "")[:100])
    except Exception:
        log.exception("storyline autocomplete failed in guild %s", guild_id)
        return []
    return [app_commands.Choice(name=cut(f"#{r.id} {r.title}", 100), value=r.id) for r in rows][:25]


def _summary_line(s: StorylineSummary) -> str:
    span = (
        f"{s.first_at:%d %b}"
        if s.first_at.date() == s.last_at.date()
        else (f"{s.first_at:%d %b} – {s.last_at:%d %b %Y}")
    )
    watches = f" · {', '.join(escape(w) for w in s.watches[:4])}" if s.watches else ""
    plural = "event" if s.events == 1 else "events"
    return cut(
        f"`#{s.id}` **{cut(escape(s.title), 120)}** — {s.events} {plural}, {span}{watches}", 300
    )


def list_embed(stories: list[StorylineSummary], *, active_only: bool) -> discord.Embed:
    """Render `/story list`."""
    heading = "Active storylines" if active_only else "Storylines"
    if not stories:
        text = "No storylines yet: they form when events about one subject follow each other."
    else:
        text = "\n".join(_summary_line(s) for s in stories)
    embed = discord.Embed(
        title=heading, description=cut(text, DESCRIPTION_LIMIT), colour=EMBED_COLOUR
    )
    embed.set_footer(text="Open one: /story show · draw it: /story chart")
    return fit_embed(embed)


def _event_line(e: EventView) -> str:
    link = safe_url(e.link)
    title = cut(escape(e.title) or "(untitled)", 110)
    label = f"[{title}]({link})" if link else title
    names = list(dict.fromkeys(s.feed_name for s in e.sources))
    sources = f" — {len(names)} source{'s' if len(names) != 1 else ''}" if names else ""
    line = f"{format_dt(e.occurred_at, 'd')} `#{e.id}` {label}{sources}"
    added = [s for s in e.sources if s.brief]
    if added:
        line += f"\n  +{escape(added[-1].feed_name)}: ‘{cut(escape(added[-1].brief), 140)}’"
    return line


def show_embed(detail: StorylineDetail) -> discord.Embed:
    """Render `/story show`: the storyline as a timeline, oldest first."""
    s = detail.storyline
    events = detail.events
    shown = events[-SHOW_EVENTS:]
    lines = [_event_line(e) for e in shown]
    if len(events) > len(shown) or detail.truncated:
        lines.insert(0, f"…{len(events) - len(shown)} earlier events (see `/story export`)")
    embed = discord.Embed(
        title=cut(escape(s.title) or "Untitled storyline", TITLE_LIMIT),
        description=cut("\n".join(lines) or "No events.", DESCRIPTION_LIMIT),
        colour=EMBED_COLOUR,
    )
    embed.add_field(name="Events", value=str(s.events), inline=True)
    embed.add_field(
        name="Since",
        value=f"{format_dt(s.first_at, 'D')}" if events else "–",
        inline=True,
    )
    if s.watches:
        embed.add_field(
            name="Watches",
            value=cut(", ".join(escape(w) for w in s.watches), FIELD_VALUE_LIMIT),
            inline=True,
        )
    embed.set_footer(text=f"Storyline #{s.id} · one event in full: /event show")
    return fit_embed(embed)


class StorylinesCog(commands.Cog, name="Storylines"):
    """Follow a subject over weeks: list, show, chart, export and correct storylines."""

    story = app_commands.Group(
        name="story", description="Storylines: events about one subject", guild_only=True
    )

    def __init__(self, bot: TimelineBot) -> None:
        self.bot = bot

    @story.command(name="list", description="Storylines, most recently continued first")
    @app_commands.describe(all="Include storylines nothing joined in the last 30 days")
    async def list_(self, interaction: discord.Interaction[Any], all: bool = False) -> None:
        """List the guild's storylines."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            stories = await story_svc.list_storylines(session, guild_id, active_only=not all)
        await interaction.response.send_message(
            embed=list_embed(stories, active_only=not all), allowed_mentions=no_pings()
        )

    @story.command(name="show", description="A storyline as a timeline: date, event, sources")
    @app_commands.describe(story="The storyline (type part of its title or its number)")
    @app_commands.autocomplete(story=story_choices)
    async def show(self, interaction: discord.Interaction[Any], story: StoryId) -> None:
        """Show one storyline."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            detail = await story_svc.show_storyline(session, guild_id, story)
        await interaction.response.send_message(
            embed=show_embed(detail), allowed_mentions=no_pings()
        )

    @story.command(name="chart", description="A storyline's events over time, as a picture")
    @app_commands.describe(story="The storyline (type part of its title or its number)")
    @app_commands.autocomplete(story=story_choices)
    async def chart(self, interaction: discord.Interaction[Any], story: StoryId) -> None:
        """Post a PNG of the storyline's events per day or week, one colour per watch."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            row = await story_svc.get_storyline(session, guild_id, story)
            title = row.title
            zone = await settings_svc.guild_zone(
                session, guild_id, self.bot.settings.discord.timezone
            )
        await interaction.response.defer(thinking=True)
        async with self.bot.db.session() as session:
            data = await story_svc.storyline_chart(session, guild_id, story, zone=zone)
        png = await asyncio.to_thread(render_png, data, cut(f"Storyline #{story}: {title}", 90))
        # The days are the guild's: say which zone when it is not UTC.
        days = f" (days in {zone})" if str(zone) != "UTC" else ""
        await interaction.followup.send(
            cut(f"{data.events} events of *{escape(title)}*, per {data.bucket}{days}.", 2000),
            file=discord.File(io.BytesIO(png), filename=f"storyline-{story}.png"),
            allowed_mentions=no_pings(),
        )

    @story.command(name="export", description="A storyline's events as CSV, JSON, ICS or Markdown")
    @app_commands.describe(story="The storyline", format="File format")
    @app_commands.autocomplete(story=story_choices)
    async def export(
        self,
        interaction: discord.Interaction[Any],
        story: StoryId,
        format: Literal["csv", "json", "ics", "md"] = "md",
    ) -> None:
        """Attach one storyline as a file."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            zone = await settings_svc.guild_zone(
                session, guild_id, self.bot.settings.discord.timezone
            )
            name, data = await story_svc.export_storyline(
                session, guild_id, story, format, now=datetime.now(UTC), zone=zone
            )
        await interaction.response.send_message(
            f"Storyline `#{story}` as {format}.",
            file=discord.File(io.BytesIO(data), filename=name),
            allowed_mentions=no_pings(),
        )

    @story.command(name="rename", description="Admins: give a storyline a title of your own")
    @app_commands.describe(story="The storyline", title="The new title (up to 200 characters)")
    @app_commands.autocomplete(story=story_choices)
    @admin_check()
    async def rename(
        self,
        interaction: discord.Interaction[Any],
        story: StoryId,
        title: app_commands.Range[str, 1, 200],
    ) -> None:
        """Rename a storyline; ingest keeps the new title."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            s = await story_svc.rename_storyline(
                session, guild_id, story, title, actor(interaction)
            )
        await interaction.response.send_message(
            cut(f"Storyline `#{s.id}` is now *{escape(s.title)}*.", 2000),
            allowed_mentions=no_pings(),
        )

    @story.command(name="merge", description="Admins: merge one storyline into another")
    @app_commands.describe(keep="The storyline that stays", other="The one merged into it")
    @app_commands.autocomplete(keep=story_choices, other=story_choices)
    @admin_check()
    async def merge(
        self, interaction: discord.Interaction[Any], keep: StoryId, other: StoryId
    ) -> None:
        """Merge `other` into `keep`."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            s = await story_svc.merge_storylines(session, guild_id, keep, other, actor(interaction))
        await interaction.response.send_message(
            cut(
                f"Merged storyline `#{other}` into `#{keep}` (*{escape(s.title)}*): "
                f"{s.events} events.",
                2000,
            ),
            allowed_mentions=no_pings(),
        )

    @story.command(name="split", description="Admins: move an event and all later ones out")
    @app_commands.describe(
        story="The storyline", event="The first event of the new storyline (its #id)"
    )
    @app_commands.autocomplete(story=story_choices)
    @admin_check()
    async def split(
        self, interaction: discord.Interaction[Any], story: StoryId, event: EventId
    ) -> None:
        """Split a storyline in two at `event`."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            s = await story_svc.split_storyline(session, guild_id, story, event, actor(interaction))
        await interaction.response.send_message(
            cut(
                f"Moved event `#{event}` and the {s.events - 1} after it into the new "
                f"storyline `#{s.id}` (*{escape(s.title)}*).",
                2000,
            ),
            allowed_mentions=no_pings(),
        )

    @story.command(name="detach", description="Admins: take one event out of its storyline")
    @app_commands.describe(event="The event (its #id); ingest will not put it back")
    @admin_check()
    async def detach(self, interaction: discord.Interaction[Any], event: EventId) -> None:
        """Take an event out of its storyline for good."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            left = await story_svc.detach_event(session, guild_id, event, actor(interaction))
        await interaction.response.send_message(
            f"Event `#{event}` is no longer part of storyline `#{left}`.",
            allowed_mentions=no_pings(),
        )


async def setup(bot: TimelineBot) -> None:
    """Load the storyline commands."""
    await bot.add_cog(StorylinesCog(bot))
