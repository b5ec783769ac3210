"""/watch add|edit|remove|list|pause|resume|test: the saved queries that alert a channel."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import discord
from discord import app_commands
from discord.utils import format_dt

from discordbot.autocomplete import watch_names
from discordbot.bot import TimelineBot
from discordbot.cogs._admin import (
    AdminGroupCog,
    actor,
    code,
    defer,
    embed,
    guild_of,
    lines_within,
    link,
    send,
    show,
)
from discordbot.cogs._admin import show_feed_text as feed_text
from discordbot.render import DESCRIPTION_LIMIT, alert_embed, cut
from timeline.domain.errors import TimelineError
from timeline.render.templates import MAX_TEMPLATE
from timeline.usecases import watches as watch_svc
from timeline.usecases.limits import MAX_QUERY
from timeline.usecases.watches import MAX_TEST_DAYS, WatchView

log = logging.getLogger(__name__)

TEXT_CHANNELS = (discord.ChannelType.text, discord.ChannelType.news)
# What the bot needs in a watch's channel to post an alert embed there.
POST_PERMISSIONS = discord.Permissions(view_channel=True, send_messages=True, embed_links=True)


def _target_channel(
    interaction: discord.Interaction[Any], channel: discord.TextChannel | None
) -> int:
    """Return the channel to alert: the option, else the current channel if it is a text one."""
    if channel is not None:
        return channel.id
    current = interaction.channel
    if interaction.channel_id is None or getattr(current, "type", None) not in TEXT_CHANNELS:
        raise TimelineError("alerts go to a text channel: pick one with the channel option")
    return interaction.channel_id


def _check_role(role: discord.Role | None) -> int | None:
    if role is None:
        return None
    if role.is_default():
        raise TimelineError("a watch cannot mention @everyone: pick a role")
    return role.id


def _warnings(
    interaction: discord.Interaction[Any], channel_id: int, role: discord.Role | None
) -> list[str]:
    """Say what would keep alerts from appearing or pinging, without refusing the change."""
    notes = []
    guild = interaction.guild
    target = guild.get_channel(channel_id) if guild is not None else None
    me = guild.me if guild is not None else None
    if target is not None and me is not None:
        missing = [
            name
            for name, wanted in POST_PERMISSIONS
            if wanted and not getattr(target.permissions_for(me), name)
        ]
        if missing:
            needs = ", ".join(m.replace("_", " ").title() for m in missing)
            notes.append(f"I cannot post there yet: give me {needs} in <#{channel_id}>.")
    if role is not None and not role.mentionable and me is not None:
        if not me.guild_permissions.mention_everyone:
            notes.append(f"{role.mention} is not mentionable by me: alerts will not ping it.")
    return notes


def _describe(watch: WatchView) -> str:
    role = f" · pings <@&{watch.role_id}>" if watch.role_id else ""
    paused = " · **paused**" if not watch.enabled else ""
    if watch.retired_at is not None:
        paused = " · **retired** (left the config file; alert records kept)"
    origin = " · config file" if watch.origin == "config" else ""
    return f"**{show(watch.name, 100)}** {code(watch.query, 200)} → <#{watch.channel_id}>{role}{paused}{origin}"


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class WatchCog(
    AdminGroupCog, group_name="watch", group_description="Manage watches: saved queries that alert"
):
    """Admin commands for watches."""

    @app_commands.command(name="add", description="Alert a channel about stories matching a query")
    @app_commands.describe(
        name="A short name for the watch (letters, digits, spaces, . - _)",
        query='What to match, e.g. "NATO communique" or dual-use AND China',
        channel="Where alerts go (default: this channel)",
        role="A role to mention in each alert (optional)",
    )
    async def add(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, 100],
        query: app_commands.Range[str, 1, MAX_QUERY],
        channel: discord.TextChannel | None = None,
        role: discord.Role | None = None,
    ) -> None:
        """Create a watch after checking its query parses."""
        guild_id = guild_of(interaction)
        channel_id = _target_channel(interaction, channel)
        role_id = _check_role(role)
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await watch_svc.add_watch(
                session, guild_id, name, query, channel_id, actor(interaction), role_id=role_id
            )
        notes = _warnings(interaction, channel_id, role)
        await send(interaction, "\n".join([f"Added watch {_describe(view)}", *notes]))

    @app_commands.command(name="edit", description="Change a watch's query, channel or role")
    @app_commands.describe(
        name="The watch to change",
        query="The new query (leave out to keep it)",
        channel="The new channel for alerts (leave out to keep it)",
        role="The new role to mention (leave out to keep it)",
        clear_role="Mention no role any more",
    )
    @app_commands.autocomplete(name=watch_names)
    async def edit(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, 100],
        query: app_commands.Range[str, 1, MAX_QUERY] | None = None,
        channel: discord.TextChannel | None = None,
        role: discord.Role | None = None,
        clear_role: bool = False,
    ) -> None:
        """Change a watch; what is left out stays as it was."""
        guild_id = guild_of(interaction)
        if clear_role and role is not None:
            raise TimelineError("give either a role or clear_role, not both")
        role_id = _check_role(role)
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await watch_svc.edit_watch(
                session,
                guild_id,
                name,
                actor(interaction),
                query=query,
                channel_id=channel.id if channel is not None else None,
                role_id=role_id,
                clear_role=clear_role,
            )
        notes = _warnings(interaction, view.channel_id, role) if channel or role else []
        await send(interaction, "\n".join([f"Changed watch {_describe(view)}", *notes]))

    @app_commands.command(name="remove", description="Delete a watch")
    @app_commands.describe(name="The watch to delete")
    @app_commands.autocomplete(name=watch_names)
    async def remove(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 100]
    ) -> None:
        """Delete a watch; alerts already posted stay in their channel."""
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await watch_svc.remove_watch(
                session, guild_of(interaction), name, actor(interaction)
            )
        await send(
            interaction,
            f"Removed watch **{show(view.name, 100)}**: it alerts no more; the events it "
            "posted keep it in their history, and adding it again brings it back.",
        )

    @app_commands.command(name="pause", description="Stop a watch alerting until it is resumed")
    @app_commands.describe(name="The watch to pause")
    @app_commands.autocomplete(name=watch_names)
    async def pause(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 100]
    ) -> None:
        """Pause a watch."""
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await watch_svc.pause_watch(
                session, guild_of(interaction), name, actor(interaction)
            )
        await send(
            interaction, f"Paused watch **{show(view.name, 100)}**: no alerts until resumed."
        )

    @app_commands.command(name="resume", description="Let a paused watch alert again")
    @app_commands.describe(name="The watch to resume")
    @app_commands.autocomplete(name=watch_names)
    async def resume(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 100]
    ) -> None:
        """Resume a watch."""
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await watch_svc.resume_watch(
                session, guild_of(interaction), name, actor(interaction)
            )
        await send(interaction, f"Resumed watch **{show(view.name, 100)}**.")

    @app_commands.command(name="template", description="Shape a watch's alert messages")
    @app_commands.describe(
        name="The watch",
        template="Markdown with {title} {link} {sources} {published} {snippet} {terms} {role}...",
        colour='The embed colour, e.g. "#1f8b4c"',
        clear="Back to the default message",
    )
    @app_commands.autocomplete(name=watch_names)
    async def template(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, 100],
        template: app_commands.Range[str, 1, MAX_TEMPLATE] | None = None,
        colour: app_commands.Range[str, 1, 7] | None = None,
        clear: bool = False,
    ) -> None:
        """Save a watch's template (validated: unknown placeholders are refused)."""
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await watch_svc.set_template(
                session,
                guild_of(interaction),
                name,
                actor(interaction),
                template=template,
                colour=colour,
                clear=clear,
            )
        what = "the default message" if clear else "its template"
        await send(
            interaction,
            f"Watch **{show(view.name, 100)}** now alerts with {what}; "
            "`/watch preview` shows the result.",
        )

    @app_commands.command(
        name="delivery", description="Post a watch's alerts as the bot or a webhook"
    )
    @app_commands.describe(
        name="The watch",
        mode="channel: as the bot; webhook: channel webhook; thread/forum: a thread/post per event",
        webhook_name="The author name the webhook messages show",
        avatar_url="The author avatar (an http or https URL)",
    )
    @app_commands.choices(
        mode=[
            app_commands.Choice(name="channel", value="channel"),
            app_commands.Choice(name="webhook", value="webhook"),
            app_commands.Choice(name="thread", value="thread"),
            app_commands.Choice(name="forum", value="forum"),
        ]
    )
    @app_commands.autocomplete(name=watch_names)
    async def delivery(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, 100],
        mode: str,
        webhook_name: app_commands.Range[str, 1, 80] | None = None,
        avatar_url: app_commands.Range[str, 1, 2000] | None = None,
    ) -> None:
        """Choose how a watch's alerts are posted."""
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await watch_svc.set_delivery(
                session,
                guild_of(interaction),
                name,
                actor(interaction),
                mode=mode,
                webhook_name=webhook_name,
                avatar_url=avatar_url,
            )
        await send(
            interaction, f"Watch **{show(view.name, 100)}** now posts {_how(view.delivery)}."
        )

    @app_commands.command(name="preview", description="Show a watch's alert for its latest event")
    @app_commands.describe(
        name="The watch",
        template="Try this template instead of the saved one (nothing is saved)",
        colour='Try this colour, e.g. "#1f8b4c"',
    )
    @app_commands.autocomplete(name=watch_names)
    async def preview(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, 100],
        template: app_commands.Range[str, 1, MAX_TEMPLATE] | None = None,
        colour: app_commands.Range[str, 1, 7] | None = None,
    ) -> None:
        """Render the alert of the watch's latest event as it would be posted (unsaved)."""
        await defer(interaction)
        async with self.bot.db.session() as session:
            view = await watch_svc.preview_alert(
                session, guild_of(interaction), name, template=template, colour=colour
            )
        await send(
            interaction,
            "Preview (not posted, nothing saved):",
            embed=alert_embed(view, self.bot.settings.alerts.snippet_chars),
        )

    @app_commands.command(name="list", description="List this server's watches")
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        """Show every watch the server sees, with its query, channel and role."""
        async with self.bot.db.session() as session:
            watches = await watch_svc.list_watches(session, guild_of(interaction))
        if not watches:
            await send(interaction, "No watches yet: add one with `/watch add`.")
            return
        body = lines_within([_describe(w) for w in watches], more=" (see /config export)")
        await send(interaction, embed=embed(f"Watches ({len(watches)})", body))

    @app_commands.command(
        name="test", description="Show what a query would have matched lately, without saving it"
    )
    @app_commands.describe(query="The query to try", days="How many days back to look (default 7)")
    async def test(
        self,
        interaction: discord.Interaction[Any],
        query: app_commands.Range[str, 1, MAX_QUERY],
        days: app_commands.Range[int, 1, MAX_TEST_DAYS] = 7,
    ) -> None:
        """Count the stored entries of the last `days` days the query matches; show five."""
        guild_id = guild_of(interaction)
        await defer(interaction)
        async with self.bot.db.session() as session:
            result = await watch_svc.test_watch(session, guild_id, query, days, datetime.now(UTC))
        count = f"{result.count}+" if result.capped else str(result.count)
        entries = "entry" if result.count == 1 and not result.capped else "entries"
        title = f"{count} stored {entries} of the last {days} days match"
        lines = []
        for hit in result.first:
            headline = link(feed_text(hit.title, 150) or "(untitled story)", hit.link)
            lines.append(
                f"{format_dt(hit.published_at, 'd')} · {show(hit.feed_name, 60)} · {headline}"
            )
        body = "\n".join(lines) if lines else "Nothing stored matches it yet."
        reply = embed(title, cut(body, DESCRIPTION_LIMIT))
        reply.set_footer(text=cut(f"Query: {' '.join(query.split())}", 2048))
        await send(interaction, embed=reply)


async def setup(bot: TimelineBot) -> None:
    """Add the /watch commands."""
    await bot.add_cog(WatchCog(bot))


def _how(delivery: str) -> str:
    return {
        "webhook": "through the channel's webhook",
        "thread": "as the bot with a thread per event",
        "forum": "a forum post per event",
    }.get(delivery, "as the bot")
