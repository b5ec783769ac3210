"""`/chart [query] [since] [until] [bucket]`: events per watch over time, as a PNG."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from discordbot.cogs.timeline import check_query
from discordbot.render import cut, escape, no_pings
from discordbot.views import blank, guild_of, time_range
from timeline.usecases import settings as settings_svc
from timeline.usecases.chart import ChartData, chart_data, render_png

if TYPE_CHECKING:
    from discordbot.bot import TimelineBot

log = logging.getLogger(__name__)


def caption(data: ChartData, query: str | None) -> str:
    """Describe the chart in one line under the picture."""
    what = f" matching {escape(' '.join(query.split()))}" if query else ""
    capped = " (only the newest were counted)" if data.capped else ""
    return cut(
        f"{data.events} events{what}{capped}, per {data.bucket}, "
        f"{data.first_day():%Y-%m-%d} to {data.last_day():%Y-%m-%d} ({data.zone}).",
        2000,
    )


class ChartCog(commands.Cog, name="Chart"):
    """Draw the timeline."""

    def __init__(self, bot: TimelineBot) -> None:
        self.bot = bot

    @app_commands.command(name="chart", description="Events per watch over time, as a picture")
    @app_commands.describe(
        query="Only events whose stories match this query",
        since="Oldest event: 2025-07-09, 30d, 24h (default: fits the data, at most 30d or 26w)",
        until="Newest event time (a date includes that whole day; default: now, "
        "or the newest event if no since)",
        bucket="Count per day or per week",
    )
    @app_commands.guild_only()
    async def chart(
        self,
        interaction: discord.Interaction[Any],
        query: app_commands.Range[str, 1, 1000] | None = None,
        since: app_commands.Range[str, 1, 64] | None = None,
        until: app_commands.Range[str, 1, 64] | None = None,
        bucket: Literal["day", "week"] = "day",
    ) -> None:
        """Post a PNG chart of events per watch per day or week."""
        guild_id = guild_of(interaction)
        now = datetime.now(UTC)
        query = blank(query)
        aliases = None
        async with self.bot.db.session() as session:
            zone = await settings_svc.guild_zone(
                session, guild_id, self.bot.settings.discord.timezone
            )
            if query:
                aliases = await check_query(session, guild_id, query)
        start, end = time_range(since, until, now, zone=zone)
        await interaction.response.defer(thinking=True)
        async with self.bot.db.session() as session:
            data = await chart_data(
                session,
                guild_id,
                query=query,
                since=start,
                until=end,
                bucket=bucket,
                now=now,
                aliases=aliases,
                zone=zone,
            )
        # Matplotlib is CPU-bound: draw in a worker thread so the gateway keeps its heartbeat.
        # Data spanning more buckets than a picture holds raises BadQuery (answered by the
        # error handler in place of the "thinking" message).
        png = await asyncio.to_thread(render_png, data, data.title(query))
        await interaction.followup.send(
            caption(data, query),
            file=discord.File(io.BytesIO(png), filename="timeline-chart.png"),
            allowed_mentions=no_pings(),
        )


async def setup(bot: TimelineBot) -> None:
    """Load the chart command."""
    await bot.add_cog(ChartCog(bot))
