"""What the admin cogs share: the admin-only group cog, who is acting, replies that ping no one."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown

from discordbot.bot import TimelineBot
from discordbot.checks import require_admin
from discordbot.render import (
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    clean_text,
    cut,
    discord_len,
    neutralise_mentions,
    safe_url,
)

log = logging.getLogger(__name__)

# Discord refuses attachments above this for most servers; our files stay far below it.
MAX_REPLY_FILE = 8 * 1024 * 1024


class AdminGroupCog(commands.GroupCog):
    """A slash-command group whose every subcommand is re-checked for admin rights server side.

    Subclasses also carry ``@app_commands.guild_only()`` and
    ``@app_commands.default_permissions(manage_guild=True)`` so Discord hides the group from
    members; this check holds when a server overrides that (or uses the configured admin role).
    """

    def __init__(self, bot: TimelineBot) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Refuse anyone who is neither a Manage Server holder nor in the admin role."""
        require_admin(interaction)
        return True


def actor(interaction: discord.Interaction[Any]) -> str:
    """Name who is acting, for the change log: `name (id)`."""
    return f"{interaction.user} ({interaction.user.id})"


def guild_of(interaction: discord.Interaction[Any]) -> int:
    """Return the interaction's guild id, refusing direct messages."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


def show(text: str | None, limit: int = 200) -> str:
    """Make stored text (names, queries, titles) safe to show: one line, escaped, no mentions."""
    flat = " ".join((text or "").split())
    flat = "".join(ch for ch in flat if ch.isprintable())
    return neutralise_mentions(escape_markdown(cut(flat, limit), ignore_links=False))


def show_feed_text(text: str | None, limit: int = 200) -> str:
    """Make feed-provided text (titles) safe to show: no tags, escaped, no mentions, cut."""
    return neutralise_mentions(escape_markdown(cut(clean_text(text), limit), ignore_links=False))


def link(label: str, url: str | None) -> str:
    """Return a markdown link if `url` is a safe http(s) URL, else the label alone.

    `label` must already be escaped; a `]` inside it would otherwise end the link text early.
    """
    target = safe_url(url)
    if not target:
        return label
    text = label.replace("]", "\\]")
    return f"[{text}]({target})"


def code(text: str, limit: int = 300) -> str:
    """Show `text` in an inline code span that nothing inside can break out of."""
    flat = " ".join(text.split()).replace("`", "ˋ")
    return f"`{cut(flat, limit) or ' '}`"


def lines_within(lines: list[str], limit: int = DESCRIPTION_LIMIT, *, more: str = "") -> str:
    """Join as many whole lines as fit in `limit`, then say how many were left out."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        after = len(lines) - i - 1
        reserve = discord_len(f"\n…and {after} more{more}") if after else 0
        if used + discord_len(line) + reserve > limit:
            out.append(f"…and {len(lines) - i} more{more}")
            break
        out.append(line)
        used += discord_len(line) + 1
    return cut("\n".join(out), limit)


def embed(title: str, description: str | None = None) -> discord.Embed:
    """Build a plain embed for an admin reply."""
    return discord.Embed(
        title=cut(title, 256), description=description or None, colour=discord.Colour.blurple()
    )


async def send(
    interaction: discord.Interaction[Any],
    text: str | None = None,
    *,
    embed: discord.Embed | None = None,
    file: discord.File | None = None,
) -> None:
    """Answer ephemerally (as the response or, after a defer, as a followup) with no pings."""
    kwargs: dict[str, Any] = {
        "ephemeral": True,
        "allowed_mentions": discord.AllowedMentions.none(),
    }
    if text is not None:
        kwargs["content"] = cut(text, CONTENT_LIMIT)
    if embed is not None:
        kwargs["embed"] = embed
    if file is not None:
        kwargs["file"] = file
    if interaction.response.is_done():
        await interaction.followup.send(**kwargs)
    else:
        await interaction.response.send_message(**kwargs)
