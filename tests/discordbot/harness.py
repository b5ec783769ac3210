"""Run the real TimelineBot against the in-repo Discord emulator on a real SQLite file."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discordbot.bot import TimelineBot
from tests.discord_emulator.server import DiscordEmulator
from tests.discord_emulator.specs import GuildSpec, default_guild
from tests.discordbot.outbox_seed import Seed, migrated_db
from timeline.app.config import AlertSettings, DiscordSettings, Settings
from timeline.storage.engine import Database

GUILD = default_guild()
ALERTS_CHANNEL = GUILD.channel("alerts").id
GENERAL_CHANNEL = GUILD.channel("general").id
ADMIN_ROLE = GUILD.role("Admin").id


@dataclass
class Harness:
    """A running emulator, a database and a bot; `start_bot` gives further bots on the same db."""

    emu: DiscordEmulator
    db: Database
    seed: Seed
    tmp_path: Path
    guild: GuildSpec = GUILD
    admin_role_id: int | None = ADMIN_ROLE

    def settings(self, **alerts: Any) -> Settings:
        """Build settings with the emulated guild and the given alert options."""
        return Settings(
            discord=DiscordSettings(guild_ids=(self.guild.id,), admin_role_id=self.admin_role_id),
            alerts=AlertSettings(**alerts),
        )

    @contextlib.asynccontextmanager
    async def bot(
        self,
        *,
        deliver: bool = False,
        owner: str | None = None,
        cogs: str | None = None,
        **alerts: Any,
    ) -> AsyncIterator[TimelineBot]:
        """Run one TimelineBot until the block ends (delivery loop only if `deliver`)."""
        bot = TimelineBot(
            self.settings(**alerts),
            self.db,
            deliver_alerts=deliver,
            delivery_owner=owner,
            # The real cogs are tested by their own suite; these tests load only what they name.
            cogs_package=cogs,
            # The emulator streams every GUILD_CREATE right after READY; do not idle 2 s.
            guild_ready_timeout=0.05,
        )
        async with self.emu.run_bot(bot):
            yield bot


@contextlib.asynccontextmanager
async def harness(
    tmp_path: Path, guild: GuildSpec = GUILD, admin_role_id: int | None = ADMIN_ROLE
) -> AsyncIterator[Harness]:
    """Start the emulator and open a migrated database; close both at the end."""
    db = await migrated_db(tmp_path)
    try:
        async with DiscordEmulator([guild]) as emu:
            yield Harness(emu, db, Seed(), tmp_path, guild, admin_role_id)
    finally:
        await db.dispose()
