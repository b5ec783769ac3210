"""/alias set|remove|list: named query pieces (`@china` = `China OR Chinese OR Beijing`)."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from discordbot.autocomplete import alias_names
from discordbot.bot import TimelineBot
from discordbot.cogs._admin import (
    AdminGroupCog,
    actor,
    code,
    defer,
    embed,
    guild_of,
    lines_within,
    send,
    show,
)
from timeline.usecases import aliases as alias_svc
from timeline.usecases.aliases import AliasView
from timeline.usecases.limits import MAX_QUERY

log = logging.getLogger(__name__)


def _describe(alias: AliasView) -> str:
    origin = " · config file" if alias.origin == "config" else ""
    return f"**@{show(alias.name, 60)}** = {code(alias.query, 300)}{origin}"


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AliasCog(
    AdminGroupCog, group_name="alias", group_description="Manage query aliases (@name in queries)"
):
    """Admin commands for query aliases."""

    @app_commands.command(name="set", description="Create or change an alias for use in queries")
    @app_commands.describe(
        name="The alias name, used as @name (letters, digits, _ and -)",
        query="What @name stands for, e.g. China OR Chinese OR Beijing",
    )
    async def set_(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, 51],
        query: app_commands.Range[str, 1, MAX_QUERY],
    ) -> None:
        """Create or change an alias; every watch using it must still parse."""
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await alias_svc.set_alias(
                session, guild_of(interaction), name, query, actor(interaction)
            )
        await send(interaction, f"Set {_describe(view)}")

    @app_commands.command(name="remove", description="Delete an alias no watch uses any more")
    @app_commands.describe(name="The alias to delete")
    @app_commands.autocomplete(name=alias_names)
    async def remove(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 51]
    ) -> None:
        """Delete an alias that no watch or other alias refers to."""
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await alias_svc.remove_alias(
                session, guild_of(interaction), name, actor(interaction)
            )
        await send(interaction, f"Removed alias **@{show(view.name, 60)}**.")

    @app_commands.command(name="list", description="List the aliases this server's queries can use")
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        """Show every alias the server sees."""
        async with self.bot.db.session() as session:
            aliases = await alias_svc.list_aliases(session, guild_of(interaction))
        if not aliases:
            await send(interaction, "No aliases yet: add one with `/alias set`.")
            return
        body = lines_within([_describe(a) for a in aliases], more=" (see /config export)")
        await send(interaction, embed=embed(f"Aliases ({len(aliases)})", body))


async def setup(bot: TimelineBot) -> None:
    """Add the /alias commands."""
    await bot.add_cog(AliasCog(bot))
