"""Who may change what: admin = Manage Server permission or the configured admin role.

Admin commands are registered with ``default_permissions(manage_guild=True)`` so Discord hides
them from others, and re-checked here on every call because server admins can override what
Discord shows (and a configured admin role may lack Manage Server).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import discord
from discord import app_commands

log = logging.getLogger(__name__)

T = TypeVar("T")

REFUSAL = "Only server admins (Manage Server) or the configured admin role can do that."


class NotAdmin(app_commands.CheckFailure):
    """The user is neither a Manage Server holder nor in the admin role."""

    def __init__(self, message: str = REFUSAL) -> None:
        super().__init__(message)


def _role_ids(member: discord.Member) -> set[int]:
    ids = {role.id for role in member.roles}
    # In a guild that is not cached `member.roles` is empty; the ids came with the payload.
    raw = getattr(member, "_roles", None)
    if raw is not None:
        ids.update(int(r) for r in raw)
    return ids


def is_admin(interaction: discord.Interaction[Any], admin_role_id: int | None = None) -> bool:
    """Tell whether the interaction's user may run admin commands in its guild."""
    if interaction.guild_id is None:
        return False
    user = interaction.user
    if interaction.permissions.manage_guild or interaction.permissions.administrator:
        return True
    if isinstance(user, discord.Member):
        perms = user.guild_permissions
        if perms.manage_guild or perms.administrator:
            return True
        if admin_role_id is not None and admin_role_id in _role_ids(user):
            return True
    return False


def _configured_admin_role(interaction: discord.Interaction[Any]) -> int | None:
    settings = getattr(interaction.client, "settings", None)
    discord_settings = getattr(settings, "discord", None)
    return getattr(discord_settings, "admin_role_id", None)


def require_admin(interaction: discord.Interaction[Any]) -> None:
    """Raise `NotAdmin` unless the user is an admin (for checks inside command bodies)."""
    if not is_admin(interaction, _configured_admin_role(interaction)):
        log.info(
            "refused admin command %r to user %s in guild %s",
            interaction.command.qualified_name if interaction.command else None,
            interaction.user.id,
            interaction.guild_id,
        )
        raise NotAdmin()


async def _predicate(interaction: discord.Interaction[Any]) -> bool:
    require_admin(interaction)
    return True


def admin_only() -> Callable[[T], T]:
    """Mark an app command as admin-only: hidden by default and re-checked server side."""

    def decorator(func: T) -> T:
        func = app_commands.check(_predicate)(func)
        func = app_commands.default_permissions(manage_guild=True)(func)
        return app_commands.guild_only()(func)

    return decorator


def admin_check() -> Callable[[T], T]:
    """Re-check admin rights server side only (for subcommands of an admin-only group)."""
    return app_commands.check(_predicate)
