"""`/export format [query] [since] [until]`: the timeline as a CSV, JSON, iCalendar or Markdown file.

The file is sent privately to the member who asked (an export can be long and is for them).
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from discordbot.cogs.timeline import check_query
from discordbot.render import no_pings
from discordbot.views import actor, blank, guild_of, time_range
from timeline.domain.errors import TimelineError
from timeline.usecases import settings as settings_svc
from timeline.usecases.export import export_events

if TYPE_CHECKING:
    from discordbot.bot import TimelineBot

log = logging.getLogger(__name__)

# Discord's smallest upload limit for a bot (no server boosts) is 10 MiB; stay below it.
MAX_FILE_BYTES = 8 * 1024 * 1024


class ExportCog(commands.Cog, name="Export"):
    """Export the timeline as a file."""

    def __init__(self, bot: TimelineBot) -> None:
        self.bot = bot
        self.max_file_bytes = MAX_FILE_BYTES

    @app_commands.command(name="export", description="The timeline as a file")
    @app_commands.describe(
        format="csv (spreadsheets), json, ics (calendars) or md (Markdown)",
        query="Only events whose stories match this query",
        since="Oldest event time: 2025-07-09, 7d, 24h, yesterday",
        until="Newest event time (a date includes that whole day)",
    )
    @app_commands.guild_only()
    async def export(
        self,
        interaction: discord.Interaction[Any],
        format: Literal["csv", "json", "ics", "md"],
        query: app_commands.Range[str, 1, 1000] | None = None,
        since: app_commands.Range[str, 1, 64] | None = None,
        until: app_commands.Range[str, 1, 64] | None = None,
    ) -> None:
        """Send the guild's timeline as a file attachment, privately."""
        guild_id = guild_of(interaction)
        now = datetime.now(UTC)
        query = blank(query)
        async with self.bot.db.session() as session:
            zone = await settings_svc.guild_zone(
                session, guild_id, self.bot.settings.discord.timezone
            )
        start, end = time_range(since, until, now, zone=zone)
        # Private from the start, so errors after the deferral stay private too.
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.bot.db.session() as session:
            aliases = await check_query(session, guild_id, query) if query else None
            filename, data = await export_events(
                session,
                guild_id,
                format,
                query=query,
                since=start,
                until=end,
                now=now,
                aliases=aliases,
                zone=zone,
            )
        if len(data) > self.max_file_bytes:
            raise TimelineError(
                f"The export is {len(data) / 1_048_576:.1f} MiB, more than Discord accepts "
                f"({self.max_file_bytes / 1_048_576:.0f} MiB). Narrow it with since, until or a "
                "query, or run `timeline-bot export` on the server."
            )
        log.info(
            "export %s (%d bytes) for %s in guild %s",
            filename,
            len(data),
            actor(interaction),
            guild_id,
            extra={"guild_id": guild_id},
        )
        file = discord.File(io.BytesIO(data), filename=filename)
        await interaction.followup.send(
            f"Here is the timeline as `{format}`.",
            file=file,
            ephemeral=True,
            allowed_mentions=no_pings(),
        )


async def setup(bot: TimelineBot) -> None:
    """Load the export command."""
    await bot.add_cog(ExportCog(bot))
