"""The Discord bot: loads the cogs, syncs commands, owns alert delivery and the digest schedule."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
from datetime import UTC
from importlib.metadata import version
from typing import Any

import discord
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from discord.ext import commands

from discordbot.delivery import AlertDelivery
from discordbot.errors import on_app_command_error
from timeline.app.config import Settings
from timeline.storage.engine import Database
from timeline.usecases.settings import channel_zone

log = logging.getLogger(__name__)

COGS_PACKAGE = "discordbot.cogs"

# What the bot needs in its alert channels: see the channel, post, embed, attach (exports
# and charts), mention the roles of watches that are not "mentionable by everyone", and for
# webhook delivery make a channel webhook and read back its recent messages (a retry after a
# crash finds the message an earlier attempt posted), for thread delivery start a thread on
# the alert and reply in it.
# The README's invite URL carries exactly this value (tests/discordbot/test_invite.py).
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    mention_everyone=True,
    read_message_history=True,
    manage_webhooks=True,
    create_public_threads=True,
    send_messages_in_threads=True,
)


def _version() -> str:
    try:
        return version("timeline-bot")
    except Exception:
        return "0+unknown"


def cog_modules(package: str = COGS_PACKAGE) -> list[str]:
    """List the modules of `package` that expose `async def setup(bot)`, if it exists."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    names = []
    for info in sorted(pkgutil.iter_modules(spec.submodule_search_locations), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{package}.{info.name}"
        module = importlib.import_module(name)
        if callable(getattr(module, "setup", None)):
            names.append(name)
    return names


class TimelineBot(commands.Bot):
    """The Timeline Bot client: `db`, `settings`, `version`, `delivery` for the cogs."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        version: str | None = None,
        deliver_alerts: bool = True,
        sync_commands: bool = True,
        cogs_package: str | None = COGS_PACKAGE,
        delivery_owner: str | None = None,
        **options: Any,
    ) -> None:
        intents = options.pop("intents", None) or discord.Intents.default()
        # Slash commands need no message content; guilds are needed for channels and roles.
        intents.message_content = False
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        if settings.discord.shard_count is not None and isinstance(self, commands.AutoShardedBot):
            options.setdefault("shard_count", settings.discord.shard_count)
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, **options)
        self.settings = settings
        self.db = db
        self.version = version or _version()
        self.deliver_alerts = deliver_alerts
        self.sync_commands = sync_commands
        self.cogs_package = cogs_package
        self.delivery = AlertDelivery(self, db, settings.alerts, owner=delivery_owner)
        self.scheduler: AsyncIOScheduler | None = None
        self.tree.on_error = on_app_command_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        """Load the cogs, sync the command tree, start delivery and the digest schedule."""
        if self.cogs_package:
            for name in cog_modules(self.cogs_package):
                await self.load_extension(name)
                log.info("loaded cog module %s", name)
        if self.sync_commands:
            await self.sync_tree()
        if self.deliver_alerts:
            self.delivery.start()
        await self.reschedule_digests()

    async def sync_tree(self) -> None:
        """Publish the slash commands to each configured guild, or globally if none."""
        guild_ids = self.settings.discord.guild_ids
        if not guild_ids:
            commands_synced = await self.tree.sync()
            log.info("synced %d global commands", len(commands_synced))
            return
        for guild_id in guild_ids:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                commands_synced = await self.tree.sync(guild=guild)
            except discord.HTTPException as exc:
                # One guild that removed the bot must not keep the others without commands.
                log.warning("could not sync commands to guild %s: %s", guild_id, exc)
                continue
            log.info("synced %d commands to guild %s", len(commands_synced), guild_id)

    async def reschedule_digests(self) -> None:
        """(Re)schedule each configured digest in the zone of the guild that owns its channel.

        A channel belongs to the guild whose watches alert it; with only config-file watches
        (or none) the cron runs in `[discord] timezone`. Called at start and whenever a guild
        changes its zone, so "0 18 * * *" stays 18:00 where the readers are.
        """
        crons = self.settings.alerts.digest_cron
        if not crons:
            return

        default = self.settings.discord.timezone
        async with self.db.session() as session:
            zones = {channel: await channel_zone(session, channel, default) for channel in crons}
        scheduler = self.scheduler or AsyncIOScheduler(timezone=UTC)
        for channel_id, expression in crons.items():
            zone = zones[channel_id]
            try:
                trigger = CronTrigger.from_crontab(expression, timezone=zone)
            except ValueError as exc:
                log.error(
                    "digest for channel %s not scheduled: bad cron %r: %s",
                    channel_id,
                    expression,
                    exc,
                )
                continue
            scheduler.add_job(
                self.delivery.post_daily_digest,
                trigger,
                args=[channel_id],
                id=f"digest-{channel_id}",
                coalesce=True,
                misfire_grace_time=3600,
                max_instances=1,
                replace_existing=True,
            )
            log.info("digest for channel %s scheduled at %r (%s)", channel_id, expression, zone)
        if self.scheduler is None:
            scheduler.start()
            self.scheduler = scheduler

    async def close(self) -> None:
        """Stop delivery and the schedule, then close the Discord connection."""
        await self.delivery.stop()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        await super().close()


class ShardedTimelineBot(TimelineBot, commands.AutoShardedBot):
    """The Timeline Bot over `discord.shard_count` gateway shards in one process.

    The MRO puts `AutoShardedClient` before `Client`, so the shard manager runs the
    connections while everything else is the plain TimelineBot.
    """


def make_bot(settings: Settings, db: Database, **options: Any) -> TimelineBot:
    """Build the bot: an AutoShardedBot when `discord.shard_count` is configured."""
    if settings.discord.shard_count is not None:
        return ShardedTimelineBot(settings, db, **options)
    return TimelineBot(settings, db, **options)
