"""Autocomplete for watch, feed and alias names: the guild's own rows plus the config file's.

Discord gives an autocomplete interaction three seconds and shows nothing on failure, so these
callbacks never raise: a database problem is logged and the member sees no suggestions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.usecases import aliases as alias_svc
from timeline.usecases import feeds as feed_svc
from timeline.usecases import watches as watch_svc

log = logging.getLogger(__name__)

# https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-option-choice-structure
MAX_CHOICES = 25
CHOICE_LIMIT = 100

Lookup = Callable[[AsyncSession, int, str], Awaitable[list[str]]]


async def _choices(
    interaction: discord.Interaction[Any], current: str, lookup: Lookup, *, label: str = "{}"
) -> list[app_commands.Choice[str]]:
    guild_id = interaction.guild_id
    db = getattr(interaction.client, "db", None)
    if guild_id is None or db is None:
        return []
    prefix = (current or "")[:CHOICE_LIMIT]
    try:
        async with db.session() as session:
            names = await lookup(session, guild_id, prefix)
    except Exception:
        log.exception("autocomplete %s failed in guild %s", lookup.__name__, guild_id)
        return []
    choices = []
    for name in names:
        shown = label.format(name)
        # A value Discord cannot carry could not be sent back anyway; skip rather than cut.
        if 0 < len(name) <= CHOICE_LIMIT and len(shown) <= CHOICE_LIMIT:
            choices.append(app_commands.Choice(name=shown, value=name))
    return choices[:MAX_CHOICES]


async def _watch_names(session: AsyncSession, guild_id: int, prefix: str) -> list[str]:
    return await watch_svc.watch_names(session, guild_id, prefix)


async def _feed_names(session: AsyncSession, guild_id: int, prefix: str) -> list[str]:
    return await feed_svc.feed_names(session, guild_id, prefix)


async def _alias_names(session: AsyncSession, guild_id: int, prefix: str) -> list[str]:
    return await alias_svc.alias_names(session, guild_id, prefix)


async def watch_names(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Suggest the names of the watches this guild sees, those starting with `current` first."""
    return await _choices(interaction, current, _watch_names)


async def feed_names(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Suggest the names of the feeds this guild sees, those starting with `current` first."""
    return await _choices(interaction, current, _feed_names)


async def alias_names(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Suggest the aliases this guild sees that start with `current` (shown as `@name`)."""
    return await _choices(interaction, current, _alias_names, label="@{}")
