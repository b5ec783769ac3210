"""/config export: the server's feeds, watches and aliases as a TOML file the loader accepts."""

from __future__ import annotations

import io
import logging
from typing import Any

import discord
from discord import app_commands

from discordbot.bot import TimelineBot
from discordbot.cogs._admin import AdminGroupCog, guild_of, send
from timeline.usecases.config_io import export_config_toml

log = logging.getLogger(__name__)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class ConfigCog(AdminGroupCog, group_name="config", group_description="The bot's configuration"):
    """Admin commands for the configuration."""

    @app_commands.command(
        name="export", description="Download the feeds, watches and aliases as a config file"
    )
    async def export(self, interaction: discord.Interaction[Any]) -> None:
        """Send the feeds, watches and aliases this server sees as TOML."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            text = await export_config_toml(session, guild_id)
        await send(
            interaction,
            "Feeds, watches and aliases in the config file format: merge it into config.toml "
            "(add the [database] and [discord] sections of your own).",
            file=discord.File(io.BytesIO(text.encode("utf-8")), filename="timeline-config.toml"),
        )


async def setup(bot: TimelineBot) -> None:
    """Add the /config commands."""
    await bot.add_cog(ConfigCog(bot))
