"""What the admin cogs share: the admin-only group cog, who is acting, replies that ping no one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown

from discordbot.bot import TimelineBot
from discordbot.checks import REFUSAL, is_admin, require_admin
from discordbot.errors import APOLOGY, describe
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

CONFIRM_TIMEOUT = 120.0  # well inside the 15 minutes an interaction token may edit its message
NOT_YOURS = "Only the admin who ran this command can answer it."

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


async def defer(interaction: discord.Interaction[Any]) -> None:
    """Acknowledge now (ephemeral "thinking"), before work that may wait on the database."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)


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


class Confirm(discord.ui.View):
    """Confirm/Cancel buttons before a destructive change; only the member who asked may answer.

    `action` runs on Confirm and returns the text that replaces the question; a known error
    (`TimelineError`) replaces it with its message. Unanswered, the buttons go after `timeout`.
    """

    def __init__(
        self,
        owner_id: int,
        action: Callable[[], Awaitable[str]],
        *,
        key: str,
        confirm_label: str,
        timeout: float | None = None,
    ) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT if timeout is None else timeout)
        self.owner_id = owner_id
        self.action = action
        self.origin: discord.Interaction[Any] | None = None
        self.outcome: str | None = None
        # Unique ids: two pending questions must not answer each other's buttons.
        confirm: discord.ui.Button[Confirm] = discord.ui.Button(
            label=confirm_label, style=discord.ButtonStyle.danger, custom_id=f"{key}:confirm"
        )
        cancel: discord.ui.Button[Confirm] = discord.ui.Button(
            label="Cancel", style=discord.ButtonStyle.secondary, custom_id=f"{key}:cancel"
        )
        confirm.callback = self._confirm  # type: ignore[method-assign]
        cancel.callback = self._cancel  # type: ignore[method-assign]
        self.add_item(confirm)
        self.add_item(cancel)

    async def ask(self, interaction: discord.Interaction[Any], question: str) -> None:
        """Send the question with the buttons as the (ephemeral) answer to `interaction`."""
        self.origin = interaction
        kwargs: dict[str, Any] = {
            "content": cut(question, CONTENT_LIMIT),
            "view": self,
            "ephemeral": True,
            "allowed_mentions": discord.AllowedMentions.none(),
        }
        if interaction.response.is_done():
            await interaction.followup.send(**kwargs)
        else:
            await interaction.response.send_message(**kwargs)

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Let only the asking member, still an admin, answer."""
        settings = getattr(interaction.client, "settings", None)
        admin_role = getattr(getattr(settings, "discord", None), "admin_role_id", None)
        text = None
        if interaction.user.id != self.owner_id:
            text = NOT_YOURS
        elif not is_admin(interaction, admin_role):
            text = REFUSAL
        if text is None:
            return True
        await interaction.response.send_message(
            text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )
        return False

    async def _finish(self, interaction: discord.Interaction[Any], text: str) -> None:
        self.outcome = text
        await interaction.edit_original_response(
            content=cut(neutralise_mentions(text), CONTENT_LIMIT),
            view=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def _confirm(self, interaction: discord.Interaction[Any]) -> None:
        self.stop()
        # Acknowledge first: the change may take longer than Discord's three seconds.
        await interaction.response.defer()
        try:
            text = await self.action()
        except Exception as exc:
            text, expected = describe(exc)
            if not expected:
                log.exception("confirmed action failed for user %s", interaction.user.id)
                text = APOLOGY
        await self._finish(interaction, text)

    async def _cancel(self, interaction: discord.Interaction[Any]) -> None:
        self.stop()
        await interaction.response.defer()
        await self._finish(interaction, "Cancelled: nothing was changed.")

    async def on_timeout(self) -> None:
        """Take the buttons away once nobody can usefully click them."""
        if self.origin is None:
            return
        try:
            await self.origin.edit_original_response(
                content="No answer: nothing was changed.", view=None
            )
        except discord.HTTPException as exc:
            log.info("could not close an unanswered question: %s", exc)
        self.outcome = "timeout"
