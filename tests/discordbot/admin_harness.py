"""Run TimelineBot with the admin cogs only, against the emulator, a SQLite file and 127.0.0.1 feeds."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from discordbot.bot import TimelineBot
from feeds.fetch import Fetcher
from feeds.rounds import Poller, RoundReport
from tests.discord_emulator.records import InteractionRecord
from tests.discordbot.harness import Harness
from timeline.app.config import PollingSettings
from timeline.usecases.polling import PollStore

ADMIN_COGS = (
    "discordbot.cogs.aliases",
    "discordbot.cogs.config",
    "discordbot.cogs.feeds",
    "discordbot.cogs.settings",
    "discordbot.cogs.watches",
)

# The feed server listens on 127.0.0.1, which the SSRF guard refuses unless allowed.
POLLING = PollingSettings(
    allow_private=("127.0.0.1",), timeout_seconds=3.0, max_body_bytes=200_000, jitter=0.0
)


class AdminBot(TimelineBot):
    """A TimelineBot that loads the named cog modules instead of the whole cogs package.

    Other cogs are written by others at the same time; these tests exercise the admin ones.
    """

    def __init__(self, *args: Any, extensions: Sequence[str] = ADMIN_COGS, **kwargs: Any) -> None:
        super().__init__(*args, cogs_package=None, **kwargs)
        self.admin_extensions = tuple(extensions)

    async def setup_hook(self) -> None:
        """Load the admin cogs, then do what TimelineBot does (sync, delivery)."""
        for name in self.admin_extensions:
            await self.load_extension(name)
        await super().setup_hook()


@contextlib.asynccontextmanager
async def admin_bot(
    h: Harness,
    *,
    deliver: bool = False,
    polling: PollingSettings = POLLING,
    extensions: Sequence[str] = ADMIN_COGS,
) -> AsyncIterator[TimelineBot]:
    """Run an AdminBot on the harness's emulator and database until the block ends."""
    settings = replace(h.settings(), polling=polling)
    bot = AdminBot(
        settings,
        h.db,
        extensions=extensions,
        deliver_alerts=deliver,
        guild_ready_timeout=0.05,
    )
    async with h.emu.run_bot(bot):
        yield bot


async def poll_once(bot: TimelineBot) -> RoundReport:
    """Make every feed due and run one polling round with the bot's fetch limits."""
    store = PollStore(bot.db, bot.settings.polling)
    await store.make_all_due()
    fetcher: Fetcher = bot.fetcher  # type: ignore[attr-defined]
    return await Poller(store, fetcher).run_round()


async def answered(h: Harness, record: InteractionRecord) -> str:
    """Wait until the bot's answer to `record` is no longer "thinking" and return its text."""
    await h.emu.wait_for_interaction(
        record, lambda r: r.original is not None and not r.original.loading
    )
    return record.text()
