"""`/status`: are the feeds healthy, when was the last poll, is anything stuck in the outbox."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import format_dt

from discordbot.render import FIELD_VALUE_LIMIT, cut, discord_len, escape, fit_embed, no_pings
from discordbot.views import guild_of
from timeline.usecases.status import StatusView, status

if TYPE_CHECKING:
    from discordbot.bot import TimelineBot

log = logging.getLogger(__name__)

OK_COLOUR = discord.Colour.green()
WARN_COLOUR = discord.Colour.orange()


def _when(value: Any) -> str:
    return f"{format_dt(value, 'f')} ({format_dt(value, 'R')})" if value is not None else "never"


def _listing(lines: list[str], where: str, limit: int = FIELD_VALUE_LIMIT) -> str:
    """Join as many whole lines as fit in a field, then say how many more there are."""
    shown: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        left_after = len(lines) - i - 1
        # Room for this line, plus the "and N more" note should lines remain after it.
        note = discord_len(f"\n…and {left_after} more ({where})") if left_after else 0
        if used + discord_len(line) + 1 + note > limit:
            shown.append(f"…and {len(lines) - i} more ({where})")
            break
        shown.append(line)
        used += discord_len(line) + 1
    return cut("\n".join(shown), limit)


def status_embed(view: StatusView) -> discord.Embed:
    """Render the guild's feed health, polling times and outbox."""
    trouble = bool(view.feeds_failing or view.alerts_failed_total)
    embed = discord.Embed(title="Timeline Bot status", colour=WARN_COLOUR if trouble else OK_COLOUR)
    others = view.feeds_total - view.feeds_ok - len(view.feeds_failing)
    feeds = (
        f"{view.feeds_total} followed · {view.feeds_ok} healthy · {len(view.feeds_failing)} failing"
    )
    if others:
        feeds += f" · {others} not polled yet"
    embed.add_field(name="Feeds", value=feeds, inline=False)
    if view.feeds_failing:
        lines = []
        for feed in view.feeds_failing:
            error = cut(escape(feed.last_error) or "unknown error", 160)
            ok = format_dt(feed.last_success_at, "R") if feed.last_success_at else "never"
            lines.append(f"**{cut(escape(feed.name), 60)}**: {error} (last success {ok})")
        embed.add_field(
            name="Failing feeds", value=_listing(lines, "see /feed status"), inline=False
        )
    if view.feeds_retired or view.watches_retired:
        lines = [f"feed **{cut(escape(name), 60)}**" for name in view.feeds_retired]
        lines += [f"watch **{cut(escape(name), 60)}**" for name in view.watches_retired]
        embed.add_field(
            name="Retired (not polled or alerting; history kept)",
            value=_listing(lines, "see /feed list"),
            inline=False,
        )
    embed.add_field(name="Last poll", value=_when(view.last_poll_at), inline=True)
    embed.add_field(name="Next poll", value=_when(view.next_poll_at), inline=True)
    alerts = f"{view.alerts_pending} pending · {view.alerts_failed_total} failed"
    embed.add_field(name="Alerts", value=alerts, inline=False)
    if view.alerts_failed:
        lines = [
            f"**{cut(escape(a.watch), 60)}**: {cut(escape(a.reason), 160)}"
            for a in view.alerts_failed
        ]
        embed.add_field(
            name="Recent failed alerts", value=_listing(lines, "see the logs"), inline=False
        )
    embed.set_footer(text=cut(f"Version {view.version}", 2048))
    return fit_embed(embed)


class StatusCog(commands.Cog, name="Status"):
    """Report the bot's health."""

    def __init__(self, bot: TimelineBot) -> None:
        self.bot = bot

    @app_commands.command(name="status", description="Feed health, polling times and alerts")
    @app_commands.guild_only()
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        """Show feeds healthy/failing, last and next poll, pending and failed alerts, version."""
        guild_id = guild_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.bot.db.session() as session:
            view = await status(session, guild_id, self.bot.version)
        await interaction.followup.send(
            embed=status_embed(view), ephemeral=True, allowed_mentions=no_pings()
        )


async def setup(bot: TimelineBot) -> None:
    """Load the status command."""
    await bot.add_cog(StatusCog(bot))
