"""`/web`: a private, expiring link to this server's timeline on the web (webui)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import format_dt

from discordbot.render import no_pings
from discordbot.views import actor, guild_of
from timeline.domain.errors import ConfigError, TimelineError
from timeline.usecases.web import member_link

if TYPE_CHECKING:
    from discordbot.bot import TimelineBot

log = logging.getLogger(__name__)


class WebCog(commands.Cog, name="Web"):
    """Hand out links to the web timeline."""

    def __init__(self, bot: TimelineBot) -> None:
        self.bot = bot

    @app_commands.command(name="web", description="A private link to this server's timeline")
    @app_commands.guild_only()
    async def web(self, interaction: discord.Interaction[Any]) -> None:
        """Reply privately with a signed link that names this server and the member."""
        guild_id = guild_of(interaction)
        settings = self.bot.settings
        if not settings.web.enabled:
            raise TimelineError(
                "The web timeline is not switched on for this bot; an operator can turn it on "
                "in the [web] section of the config."
            )
        try:
            secret = settings.web.secret(settings.path)
        except ConfigError as exc:
            log.error("web: cannot sign a link: %s", exc, extra={"guild_id": guild_id})
            raise TimelineError(
                "The web timeline is not set up completely on the server (its log says what is "
                "missing); ask an operator."
            ) from None
        who = actor(interaction)
        url, expires = member_link(settings.web, secret, guild_id, who)
        log.info("web link for %s", who, extra={"guild_id": guild_id})
        # <...> keeps Discord from previewing (fetching) the link.
        await interaction.response.send_message(
            f"Your link to this server's timeline, valid until {format_dt(expires, 'f')} "
            f"(it lets anyone who has it read the timeline, so keep it to yourself):\n<{url}>",
            ephemeral=True,
            allowed_mentions=no_pings(),
        )


async def setup(bot: TimelineBot) -> None:
    """Load the web command."""
    await bot.add_cog(WebCog(bot))
