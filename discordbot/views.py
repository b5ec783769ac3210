"""The paginator View and the small helpers the team members' commands share.

`Paginator` turns the pages of a `PageSource` with Previous/Next buttons. Only the member who
ran the command may turn them (others get a short ephemeral refusal); after `timeout` seconds
the buttons are disabled by editing the message, so nobody clicks a dead button.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import discord

from discordbot.errors import describe, reply
from timeline.domain.errors import BadQuery, TimelineError
from timeline.domain.typed_dates import parse_when

log = logging.getLogger(__name__)

PAGE_TIMEOUT = 180.0  # well inside the 15 minutes an interaction token may edit its message
NOT_YOURS = "Only the person who ran this command can turn its pages. Run it yourself to browse."


@dataclass(frozen=True, slots=True)
class Page:
    """One rendered page, whether there is a page after it, and how many items it shows."""

    embed: discord.Embed
    has_next: bool
    items: int = 1


# Render page `index` (0-based); may raise TimelineError.
PageSource = Callable[[int], Awaitable[Page]]


class Paginator(discord.ui.View):
    """Previous/Next buttons over a `PageSource`, usable by `owner_id` only."""

    def __init__(
        self,
        source: PageSource,
        owner_id: int,
        *,
        first: Page,
        timeout: float = PAGE_TIMEOUT,
        name: str = "pager",
    ) -> None:
        super().__init__(timeout=timeout)
        self.source = source
        self.owner_id = owner_id
        self.index = 0
        self.has_next = first.has_next
        self.message: discord.Message | discord.InteractionMessage | None = None
        self._lock = asyncio.Lock()
        self.previous_button: discord.ui.Button[Paginator] = discord.ui.Button(
            label="Previous", style=discord.ButtonStyle.secondary, custom_id=f"{name}:previous"
        )
        self.next_button: discord.ui.Button[Paginator] = discord.ui.Button(
            label="Next", style=discord.ButtonStyle.primary, custom_id=f"{name}:next"
        )
        self.previous_button.callback = self._previous  # type: ignore[method-assign]
        self.next_button.callback = self._next  # type: ignore[method-assign]
        self.add_item(self.previous_button)
        self.add_item(self.next_button)
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.previous_button.disabled = self.index == 0
        self.next_button.disabled = not self.has_next

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """Let only the member who ran the command turn the pages."""
        if interaction.user.id == self.owner_id:
            return True
        await reply(interaction, NOT_YOURS)
        return False

    async def _previous(self, interaction: discord.Interaction[Any]) -> None:
        await self._turn(interaction, -1)

    async def _next(self, interaction: discord.Interaction[Any]) -> None:
        await self._turn(interaction, +1)

    async def _turn(self, interaction: discord.Interaction[Any], step: int) -> None:
        # Acknowledge at once (a deferred update): a query page may take longer than 3 s.
        await interaction.response.defer()
        async with self._lock:
            wanted = max(self.index + step, 0)
            page = await self.source(wanted)
            self.index = wanted
            self.has_next = page.has_next
            self._sync_buttons()
            await interaction.edit_original_response(embed=page.embed, view=self)

    async def on_timeout(self) -> None:
        """Disable the buttons on the message so the page stays readable but still."""
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        if self.message is None:
            return
        try:
            await self.message.edit(view=self)
        except discord.HTTPException as exc:
            # Deleted message or expired token: there is nothing left to disable.
            log.info("could not disable the page buttons: %s", exc)

    async def on_error(
        self,
        interaction: discord.Interaction[Any],
        error: Exception,
        item: discord.ui.Item[Any],
    ) -> None:
        """Answer the click with the error's message; log the unexpected ones."""
        text, expected = describe(error)
        if not expected:
            log.exception("page turn failed for user %s", interaction.user.id, exc_info=error)
        await reply(interaction, text)


# --- helpers for the commands -------------------------------------------------------------------


def guild_of(interaction: discord.Interaction[Any]) -> int:
    """Return the interaction's guild id (the member commands are guild-only)."""
    if interaction.guild_id is None:
        raise TimelineError("This command only works in a server.")
    return interaction.guild_id


def actor(interaction: discord.Interaction[Any]) -> str:
    """Name who made a change, for the log and the rows: `name (id)`."""
    return f"{interaction.user} ({interaction.user.id})"


def time_range(
    since: str | None,
    until: str | None,
    now: datetime | None = None,
    *,
    zone: tzinfo = UTC,
) -> tuple[datetime | None, datetime | None]:
    """Parse the `since` / `until` options (ISO dates, 7d, 24h, yesterday); check their order.

    A date is that day in `zone`, the guild's time zone.
    """
    now = now or datetime.now(UTC)
    start = _when("since", since, now, end=False, zone=zone)
    end = _when("until", until, now, end=True, zone=zone)
    if start is not None and end is not None and start > end:
        raise TimelineError(f"since ({since}) is after until ({until}): nothing can match")
    return start, end


def _when(
    option: str, text: str | None, now: datetime, *, end: bool, zone: tzinfo
) -> datetime | None:
    if text is None or not text.strip():
        return None
    try:
        return parse_when(text, now, end=end, zone=zone)
    except BadQuery as exc:
        # Not a query error: say which option is wrong, without "Bad query".
        raise TimelineError(f"{option}: {exc.message}") from None


def blank(text: str | None) -> str | None:
    """Return None for an option left empty or only spaces."""
    return text.strip() if text and text.strip() else None
