"""`/search query`: the query language over every stored story, matched terms in bold.

Results are stories (entries), not events: one event with three outlets shows three lines.
Ten a page, newest first, through the search use case (`timeline.usecases.search`), whose
cursor each page keeps so Previous and Next cost the same at any depth.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import format_dt

from discordbot.render import (
    DESCRIPTION_LIMIT,
    TITLE_LIMIT,
    cut,
    discord_len,
    escape,
    highlight,
    no_pings,
    safe_url,
)
from discordbot.views import PAGE_TIMEOUT, Page, Paginator, guild_of, time_range
from timeline.usecases import search as search_svc
from timeline.usecases import settings as settings_svc
from timeline.usecases.views import HitView

if TYPE_CHECKING:
    from discordbot.bot import TimelineBot

log = logging.getLogger(__name__)

PAGE_SIZE = 10
LINE_BUDGET = (DESCRIPTION_LIMIT - 100) // PAGE_SIZE
SNIPPET_CHARS = 160
EMBED_COLOUR = discord.Colour.dark_teal()


def hit_line(hit: HitView, width: int = LINE_BUDGET) -> str:
    """Render one matching story: event, time, linked outlet, bold title terms, snippet."""
    title = highlight(hit.title, hit.terms, 150) or "(untitled)"
    name = cut(escape(hit.feed_name) or "?", 60)
    link = safe_url(hit.link)
    source = f"[{name}]({link})" if link and discord_len(link) <= 300 else name
    event = f"`#{hit.event_id}`" if hit.event_id is not None else "`—`"
    line = f"{event} {format_dt(hit.published_at, 'f')} · {source}\n{title}"
    snippet = highlight(hit.summary, hit.terms, SNIPPET_CHARS)
    if snippet:
        line += f"\n> {snippet}"
    return cut(line, width)


def search_embed(query: str, hits: list[HitView], index: int, has_next: bool) -> discord.Embed:
    """Render one page of search results."""
    first = index * PAGE_SIZE + 1
    text = " ".join(query.split())
    embed = discord.Embed(
        title=cut(f"Search: {escape(text)}", TITLE_LIMIT),
        description=cut("\n\n".join(hit_line(h) for h in hits), DESCRIPTION_LIMIT),
        colour=EMBED_COLOUR,
    )
    more = " · more on the next page" if has_next else ""
    embed.set_footer(text=f"Stories {first}–{first + len(hits) - 1}, newest first{more}")
    return embed


class SearchCog(commands.Cog, name="Search"):
    """Search every stored story with the watch query language."""

    def __init__(self, bot: TimelineBot) -> None:
        self.bot = bot
        self.page_timeout = PAGE_TIMEOUT

    @app_commands.command(name="search", description="Search the stored stories")
    @app_commands.describe(
        query='What to find, e.g. "war machine" NATO, drone OR UAV -fireworks, title:summit',
        since="Oldest story time: 2025-07-09, 7d, 24h, yesterday (days in the server's time zone)",
        until="Newest story time (a date includes that whole day)",
    )
    @app_commands.guild_only()
    async def search(
        self,
        interaction: discord.Interaction[Any],
        query: app_commands.Range[str, 1, 1000],
        since: app_commands.Range[str, 1, 64] | None = None,
        until: app_commands.Range[str, 1, 64] | None = None,
    ) -> None:
        """Search the guild's stored stories, ten a page."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            zone = await settings_svc.guild_zone(
                session, guild_id, self.bot.settings.discord.timezone
            )
        # A date means that day where the guild is.
        start, end = time_range(since, until, zone=zone)
        # Page i is read from cursors[i], which page i - 1 left (Next and Previous move by one).
        cursors: dict[int, str | None] = {0: None}

        async def render(index: int) -> Page:
            async with self.bot.db.session() as session:
                page = await search_svc.search_stories(
                    session,
                    guild_id,
                    query,
                    since=start,
                    until=end,
                    limit=PAGE_SIZE,
                    cursor=cursors[index],
                )
            has_next = page.next_cursor is not None
            cursors[index + 1] = page.next_cursor
            return Page(search_embed(query, page.hits, index, has_next), has_next, len(page.hits))

        # Check the query before deferring: a syntax error is answered privately, with its column.
        async with self.bot.db.session() as session:
            await search_svc.check_search(session, guild_id, query)
        await interaction.response.defer(thinking=True)
        first = await render(0)
        if not first.items:
            await interaction.followup.send(
                cut(f"No stored story matches {escape(query)}.", 2000),
                allowed_mentions=no_pings(),
            )
            return
        view = Paginator(
            render, interaction.user.id, first=first, timeout=self.page_timeout, name="search"
        )
        view.message = await interaction.followup.send(
            embed=first.embed, view=view, wait=True, allowed_mentions=no_pings()
        )


async def setup(bot: TimelineBot) -> None:
    """Load the search command."""
    await bot.add_cog(SearchCog(bot))
