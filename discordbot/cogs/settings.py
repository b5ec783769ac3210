"""/settings timezone|show: the server's own choices (its time zone) over the config file's."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import discord
from discord import app_commands
from discord.utils import format_dt

from discordbot.bot import TimelineBot
from discordbot.cogs._admin import AdminGroupCog, actor, defer, embed, guild_of, send, show
from timeline.usecases import settings as settings_svc
from timeline.usecases.settings import SettingsView

log = logging.getLogger(__name__)

ZONE_LIMIT = settings_svc.MAX_ZONE


async def timezone_choices(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Suggest IANA zone names (no database: the names come from zoneinfo)."""
    try:
        names = settings_svc.timezone_names((current or "")[:ZONE_LIMIT])
    except Exception:
        # Autocomplete answers nothing on failure; never let it raise.
        log.exception("time zone autocomplete failed")
        return []
    return [app_commands.Choice(name=n, value=n) for n in names]


def _describe(view: SettingsView) -> str:
    now = datetime.now(UTC).astimezone(settings_svc.zone(view.timezone))
    origin = (
        f"set by {show(view.updated_by, 100)}"
        + (f" {format_dt(view.updated_at, 'R')}" if view.updated_at else "")
        if view.origin == "guild"
        else "the config file's default"
    )
    return (
        f"**Time zone:** `{view.timezone}` (UTC{now:%z}, now {now:%Y-%m-%d %H:%M}) · {origin}\n"
        "Days on the timeline, `since`/`until` dates, the digest schedule, charts and "
        "exports follow it; times are stored in UTC."
    )


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class SettingsCog(
    AdminGroupCog, group_name="settings", group_description="This server's settings (time zone)"
):
    """Admin commands for the server's settings."""

    @app_commands.command(name="timezone", description="Set the server's time zone")
    @app_commands.describe(name="An IANA time zone name, e.g. Europe/Paris or America/New_York")
    @app_commands.autocomplete(name=timezone_choices)
    async def timezone(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 64]
    ) -> None:
        """Set the time zone the server reads its timeline in."""
        guild_id = guild_of(interaction)
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await settings_svc.set_timezone(
                session, guild_id, name, actor(interaction), self.bot.settings.discord.timezone
            )
        await self.bot.reschedule_digests()
        await send(interaction, embed=embed("Settings changed", _describe(view)))

    @app_commands.command(name="show", description="Show the server's settings")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        """Show the server's time zone and where it comes from."""
        async with self.bot.db.session() as session:
            view = await settings_svc.show_settings(
                session, guild_of(interaction), self.bot.settings.discord.timezone
            )
        await send(interaction, embed=embed("Settings", _describe(view)))


async def setup(bot: TimelineBot) -> None:
    """Add the /settings commands."""
    await bot.add_cog(SettingsCog(bot))
