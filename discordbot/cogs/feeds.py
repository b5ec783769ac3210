"""/feed add|remove|purge|list|status|import|export: the news feeds a server follows."""

from __future__ import annotations

import io
import logging
from datetime import datetime
from typing import Any

import discord
from discord import app_commands
from discord.utils import format_dt

from discordbot.autocomplete import feed_names
from discordbot.bot import TimelineBot
from discordbot.cogs._admin import (
    AdminGroupCog,
    Confirm,
    actor,
    defer,
    embed,
    guild_of,
    lines_within,
    send,
    show,
)
from discordbot.cogs._admin import show_feed_text as feed_text
from feeds.fetch import Fetcher, FetchSettings
from timeline.domain.errors import Conflict, NotFound, TimelineError
from timeline.storage.models import GLOBAL_SCOPE
from timeline.usecases import feeds as feed_svc
from timeline.usecases.feeds import MAX_INTERVAL, MIN_INTERVAL, FeedStatus, FeedView
from timeline.usecases.limits import MAX_URL
from timeline.usecases.opml import export_opml, import_opml

log = logging.getLogger(__name__)

# An OPML file of a few thousand feeds is well under this; refuse bigger uploads unread.
MAX_OPML_UPLOAD = 1024 * 1024
REPORT_LINES = 10


def fetch_settings(bot: TimelineBot) -> FetchSettings:
    """Build the fetch limits from the bot's polling settings."""
    polling = bot.settings.polling
    return FetchSettings.from_settings(polling)


def _when(value: datetime | None) -> str:
    return f"{format_dt(value, 'f')} ({format_dt(value, 'R')})" if value else "never"


def _feed_line(feed: FeedView) -> str:
    extra = []
    if feed.interval_seconds:
        extra.append(f"every {feed.interval_seconds // 60} min")
    if feed.status != "ok":
        extra.append(f"**{show(feed.status, 30)}**")
    if feed.retired_at is not None:
        extra = ["**retired** (not polled; its stories stay on the timeline)"]
    elif not feed.enabled:
        extra.append("disabled")
    if feed.origin == "config":
        extra.append("config file")
    suffix = f" · {' · '.join(extra)}" if extra else ""
    return f"**{show(feed.name, 100)}** · <{show(feed.url, 300)}>{suffix}"


def _status_line(st: FeedStatus) -> str:
    last_ok = format_dt(st.last_success_at, "R") if st.last_success_at else "never"
    error = f" · {st.error_count} errors: {show(st.last_error, 150)}" if st.last_error else ""
    return (
        f"**{show(st.name, 100)}** · {show(st.status, 30)} · {st.entry_count} entries · "
        f"last ok {last_ok}{error}"
    )


def _status_embed(st: FeedStatus) -> discord.Embed:
    reply = embed(f"Feed {st.name}", f"<{show(st.url, 1000)}>")
    reply.add_field(name="Status", value=show(st.status, 100) or "?", inline=True)
    reply.add_field(name="Stored entries", value=str(st.entry_count), inline=True)
    reply.add_field(name="Errors in a row", value=str(st.error_count), inline=True)
    reply.add_field(name="Last success", value=_when(st.last_success_at), inline=True)
    reply.add_field(name="Last check", value=_when(st.last_checked_at), inline=True)
    nxt = _when(st.next_check_at) if st.enabled else "disabled"
    if st.retired_at is not None:
        nxt = f"retired {_when(st.retired_at)}: not polled"
    reply.add_field(name="Next check", value=nxt, inline=True)
    if st.last_error:
        reply.add_field(name="Last error", value=show(st.last_error, 1000), inline=False)
    return reply


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class FeedCog(AdminGroupCog, group_name="feed", group_description="Manage the news feeds"):
    """Admin commands for feeds; fetches with the bot's shared `Fetcher`."""

    def __init__(self, bot: TimelineBot) -> None:
        super().__init__(bot)
        self._own_fetcher: Fetcher | None = None

    async def cog_load(self) -> None:
        """Share the bot's fetcher, or open one for this cog."""
        if getattr(self.bot, "fetcher", None) is None:
            fetcher = Fetcher(fetch_settings(self.bot))
            await fetcher.open()
            self._own_fetcher = fetcher
            self.bot.fetcher = fetcher  # type: ignore[attr-defined]

    async def cog_unload(self) -> None:
        """Close the fetcher this cog opened."""
        fetcher, self._own_fetcher = self._own_fetcher, None
        if fetcher is not None:
            if getattr(self.bot, "fetcher", None) is fetcher:
                self.bot.fetcher = None  # type: ignore[attr-defined]
            await fetcher.close()

    @property
    def fetcher(self) -> Fetcher:
        """The fetcher to probe new feeds with."""
        fetcher: Fetcher = self.bot.fetcher  # type: ignore[attr-defined]
        return fetcher

    @app_commands.command(name="add", description="Fetch a feed once to check it, then follow it")
    @app_commands.describe(
        url="The feed's address (RSS or Atom), http:// or https://",
        name="A display name (default: the feed's title)",
        interval="Seconds between polls (default: the configured interval)",
    )
    async def add(
        self,
        interaction: discord.Interaction[Any],
        url: app_commands.Range[str, 1, MAX_URL],
        name: app_commands.Range[str, 1, 100] | None = None,
        interval: app_commands.Range[int, MIN_INTERVAL, MAX_INTERVAL] | None = None,
    ) -> None:
        """Follow a feed that answered with a title and entries; say why not otherwise."""
        guild_id = guild_of(interaction)
        clean = feed_svc.check_url(url, "feed URL")
        polling = self.bot.settings.polling
        bounds = (polling.min_interval_seconds, polling.max_interval_seconds)
        feed_svc.check_interval(interval, *bounds)
        await defer(interaction)
        result = await feed_svc.probe_feed(self.fetcher, clean)
        async with self.bot.db.session() as session:
            view = await feed_svc.add_feed(
                session,
                guild_id,
                result.final_url or clean,
                name,
                interval,
                actor(interaction),
                result,
                interval_bounds=bounds,
            )
        title = feed_text(result.title, 200) or "untitled"
        entries = "entry" if result.entry_count == 1 else "entries"
        moved = f"\nIt moved permanently to <{show(view.url, 500)}>." if result.final_url else ""
        again = " again, with the stories stored before" if view.revived else ""
        await send(
            interaction,
            f"Following **{show(view.name, 100)}**{again}: {title}, {result.entry_count} {entries} "
            f"right now. New stories alert the watches from the next poll on.{moved}",
        )

    @app_commands.command(name="remove", description="Stop following a feed")
    @app_commands.describe(name="The feed's name or URL")
    @app_commands.autocomplete(name=feed_names)
    async def remove(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, MAX_URL]
    ) -> None:
        """Ask, then stop following a feed (retired: its stories stay on the timeline)."""
        guild_id = guild_of(interaction)
        who = actor(interaction)
        await defer(interaction)
        async with self.bot.db.session() as session:
            status = await feed_svc.feed_status(session, guild_id, name)
            visible = await feed_svc.list_feeds(session, guild_id)
        feed = next((f for f in visible if (f.name, f.url) == (status.name, status.url)), None)
        if feed is None:  # removed between the two reads
            raise NotFound(f"no feed named {name.strip()!r} on this server (see the feed list)")
        if feed.origin == "config" and guild_id != GLOBAL_SCOPE:
            raise Conflict(f"feed {feed.name!r} comes from the config file: remove it there")

        async def stop_following() -> str:
            try:
                async with self.bot.db.session() as session:
                    view = await feed_svc.remove_feed(session, guild_id, feed.url, who)
            except NotFound:
                return f"**{show(feed.name, 100)}** was purged meanwhile: nothing more to do."
            except Conflict:
                return f"**{show(feed.name, 100)}** was retired meanwhile: nothing more to do."
            return (
                f"Stopped following **{show(view.name, 100)}**; its stories stay on the "
                "timeline. `/feed purge` deletes them for good."
            )

        entries = "entry" if status.entry_count == 1 else "entries"
        question = (
            f"Stop following **{show(feed.name, 100)}** (<{show(feed.url, 300)}>)? It is no "
            f"longer polled; its {status.entry_count} stored {entries} stay on the timeline "
            "and in search, and adding it again follows it with them."
        )
        confirm = Confirm(
            interaction.user.id,
            stop_following,
            key=f"feed-remove:{interaction.id}",
            confirm_label="Stop following",
        )
        await confirm.ask(interaction, question)

    @app_commands.command(
        name="purge", description="Delete a retired or removed feed's stored history for good"
    )
    @app_commands.describe(name="The feed's name or URL")
    @app_commands.autocomplete(name=feed_names)
    async def purge(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, MAX_URL]
    ) -> None:
        """Ask, then delete a feed with its entries and the events only it carried."""
        guild_id = guild_of(interaction)
        who = actor(interaction)
        config_urls = {f.url for f in self.bot.settings.feeds}
        await defer(interaction)
        async with self.bot.db.session() as session:
            # Checks and counts only: refusals (still in the config file...) are answered now.
            plan = await feed_svc.purge_feed(
                session, guild_id, name, who, config_urls=config_urls, dry_run=True
            )

        async def purge_now() -> str:
            try:
                async with self.bot.db.session() as session:
                    view = await feed_svc.purge_feed(
                        session, guild_id, plan.url, who, config_urls=config_urls
                    )
            except NotFound:
                return f"**{show(plan.name, 100)}** was purged meanwhile: nothing more to do."
            return (
                f"Purged **{show(view.name, 100)}**: {view.entries} stored entries and "
                f"{view.events} events deleted."
            )

        question = (
            f"Delete **{show(plan.name, 100)}** (<{show(plan.url, 300)}>) for good? Its "
            f"{plan.entries} stored entries and the {plan.events} events no other feed carried "
            "leave the timeline and search, with their notes and alert records. This cannot "
            "be undone."
        )
        confirm = Confirm(
            interaction.user.id,
            purge_now,
            key=f"feed-purge:{interaction.id}",
            confirm_label="Delete for good",
        )
        await confirm.ask(interaction, question)

    @app_commands.command(name="list", description="List the feeds this server follows")
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        """Show every feed the server sees."""
        async with self.bot.db.session() as session:
            feeds = await feed_svc.list_feeds(session, guild_of(interaction))
        if not feeds:
            await send(interaction, "No feeds yet: add one with `/feed add`.")
            return
        body = lines_within([_feed_line(f) for f in feeds], more=" (see /feed export)")
        await send(interaction, embed=embed(f"Feeds ({len(feeds)})", body))

    @app_commands.command(name="status", description="Polling health of one feed or of all")
    @app_commands.describe(name="The feed's name or URL (default: all feeds)")
    @app_commands.autocomplete(name=feed_names)
    async def status(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, MAX_URL] | None = None,
    ) -> None:
        """Show when feeds were last fetched, what failed and when they are next due."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            if name is not None:
                one = await feed_svc.feed_status(session, guild_id, name)
                await send(interaction, embed=_status_embed(one))
                return
            statuses = await feed_svc.feed_statuses(session, guild_id)
        if not statuses:
            await send(interaction, "No feeds yet: add one with `/feed add`.")
            return
        failing = [s for s in statuses if s.status != "ok"]
        ordered = failing + [s for s in statuses if s.status == "ok"]
        title = f"{len(statuses)} feeds, {len(failing)} not ok"
        await send(
            interaction, embed=embed(title, lines_within([_status_line(s) for s in ordered]))
        )

    @app_commands.command(name="import", description="Follow every feed of an OPML file")
    @app_commands.describe(file="An OPML file exported from a feed reader (at most 1 MB)")
    async def import_(
        self, interaction: discord.Interaction[Any], file: discord.Attachment
    ) -> None:
        """Add the feeds of an uploaded OPML file that the server does not follow yet."""
        guild_id = guild_of(interaction)
        # Check the size Discord reports before downloading a byte of it.
        if file.size > MAX_OPML_UPLOAD:
            raise TimelineError(
                f"{show(file.filename, 100)} is too large ({file.size} bytes, "
                f"at most {MAX_OPML_UPLOAD})"
            )
        await defer(interaction)
        try:
            data = await file.read()
        except discord.HTTPException as exc:
            raise TimelineError(
                f"could not download the file from Discord ({exc.status})"
            ) from None
        if len(data) > MAX_OPML_UPLOAD:
            raise TimelineError(
                f"the file is too large ({len(data)} bytes, at most {MAX_OPML_UPLOAD})"
            )
        async with self.bot.db.session() as session:
            report = await import_opml(session, guild_id, data, actor(interaction))
        summary = (
            f"Imported {show(file.filename, 100)}: {len(report.added)} added, "
            f"{len(report.skipped)} skipped, {len(report.errors)} refused."
        )
        lines = [f"added {show(n, 100)}" for n in report.added]
        lines += [f"skipped {show(s, 200)}" for s in report.skipped]
        lines += [f"refused {show(e, 300)}" for e in report.errors]
        reply = embed(summary, lines_within(lines[:200], 3000) if lines else None)
        if report.added:
            reply.set_footer(
                text="The new feeds are fetched on the next poll; no alerts for their backlog."
            )
        await send(interaction, embed=reply)

    @app_commands.command(name="export", description="Download the feeds as an OPML file")
    async def export(self, interaction: discord.Interaction[Any]) -> None:
        """Send the server's feeds as OPML, the format every feed reader imports."""
        guild_id = guild_of(interaction)
        async with self.bot.db.session() as session:
            data = await export_opml(session, guild_id)
            count = len(await feed_svc.list_feeds(session, guild_id))
        await send(
            interaction,
            f"{count} feeds as OPML.",
            file=discord.File(io.BytesIO(data), filename="timeline-feeds.opml"),
        )


async def setup(bot: TimelineBot) -> None:
    """Add the /feed commands."""
    await bot.add_cog(FeedCog(bot))
