"""The one place app-command errors become replies: short, specific, ephemeral, never silent.

Known domain errors (`TimelineError`) are shown as they are; a failed check gets the refusal;
anything else gets an apology and a `log.exception` (as Red-DiscordBot's ``RedTree.on_error``).
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from discordbot.checks import REFUSAL, NotAdmin
from discordbot.render import CONTENT_LIMIT, cut, neutralise_mentions
from timeline.domain.errors import BadQuery, TimelineError

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side. The error was logged."


def describe(error: BaseException) -> tuple[str, bool]:
    """Return the reply for `error` and whether it was expected (no traceback logged)."""
    if isinstance(error, app_commands.CommandInvokeError | app_commands.TransformerError):
        inner = error.__cause__ if isinstance(error, app_commands.TransformerError) else None
        error = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if inner is not None and isinstance(inner, TimelineError):
            error = inner
    if isinstance(error, BadQuery):
        if error.column is not None:
            return f"Bad query: {error.message} at column {error.column}.", True
        return f"Bad query: {error.message}.", True
    if isinstance(error, TimelineError):
        return str(error) or type(error).__name__, True
    if isinstance(error, NotAdmin):
        return str(error) or REFUSAL, True
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server.", True
    if isinstance(error, app_commands.MissingPermissions | app_commands.MissingAnyRole):
        return REFUSAL, True
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} s.", True
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You cannot use this command here.", True
    if isinstance(error, app_commands.TransformerError):
        return f"Cannot use {error.value!r} there: {error}", True
    return APOLOGY, False


async def reply(interaction: discord.Interaction[Any], text: str) -> None:
    """Answer ephemerally whether or not the interaction was already responded to."""
    text = cut(neutralise_mentions(text), CONTENT_LIMIT)
    mentions = discord.AllowedMentions.none()
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=mentions)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=mentions)
    except discord.HTTPException as exc:
        # The interaction expired (10062) or Discord is down: nothing more can be said.
        log.warning("could not answer interaction %s: %s", interaction.id, exc)


async def on_app_command_error(
    interaction: discord.Interaction[Any], error: app_commands.AppCommandError
) -> None:
    """Turn any app-command error into a reply; log the unexpected ones with a traceback."""
    text, expected = describe(error)
    command = interaction.command.qualified_name if interaction.command else "?"
    if expected:
        log.info("command %s refused for user %s: %s", command, interaction.user.id, text)
    else:
        original = getattr(error, "original", error)
        log.exception(
            "command %s failed for user %s in guild %s",
            command,
            interaction.user.id,
            interaction.guild_id,
            exc_info=original,
        )
    await reply(interaction, text)
