"""`timeline-bot run` end to end: the all-in-one runner, a feed on 127.0.0.1, the emulator.

Scenario 1 of the emulator issue through the same code path `timeline-bot run` takes: the NATO
draft communique story appears in one feed and one alert is posted; a second outlet publishes
the same story and that same message is edited to list both sources, no new message.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from tests.discord_emulator import DiscordEmulator
from tests.discord_emulator.specs import default_guild
from tests.helpers import FeedServer, rss
from timeline.app.config import (
    DatabaseSettings,
    DiscordSettings,
    FeedConfig,
    PollingSettings,
    Settings,
    WatchConfig,
)
from timeline.app.wiring import App
from timeline.cli.core import run_all_in_one

GUILD = default_guild()
ALERTS = GUILD.channel("alerts").id
BLOOMBERG = (
    "bbg-nato",
    "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine",
    "NATO leaders are set to call out China for supporting Russia's war machine, including "
    "dual-use military-civilian materials, according to a draft communique seen by Bloomberg.",
)
REUTERS = (
    "reuters-nato",
    "NATO draft communique says China is a decisive enabler of Russia's war machine",
    "A draft of the NATO summit communique seen by Reuters says China supplies Russia with "
    "dual-use military-civilian materials that support its war machine.",
)
OLD = ("old-1", "Oil holds gains as traders weigh supply", "Brent steadied.")


def settings(tmp_path: Path, server: FeedServer) -> Settings:
    # Built directly, not from TOML: interval 0 makes every tick poll every feed, so the test
    # waits on Discord messages instead of on the clock.
    polling = replace(
        PollingSettings(),
        allow_private=("127.0.0.1",),
        interval_seconds=0,
        min_interval_seconds=0,
        jitter=0.0,
        tick_seconds=0.05,
        timeout_seconds=5.0,
    )
    return Settings(
        path="<test>",
        database=DatabaseSettings(f"sqlite:///{tmp_path / 'run.db'}"),
        polling=polling,
        feeds=(
            FeedConfig("Bloomberg", server.url("/bloomberg.xml")),
            FeedConfig("Reuters", server.url("/reuters.xml")),
        ),
        watches=(WatchConfig("nato", "NATO communique", ALERTS),),
        discord=DiscordSettings(guild_ids=(GUILD.id,)),
    )


async def test_run_posts_one_alert_then_edits_it_for_the_second_source(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.bodies["/bloomberg.xml"] = rss(OLD)
    feed_server.bodies["/reuters.xml"] = rss(("r-old", "Senator urges arms review", "x"))
    config = settings(tmp_path, feed_server)
    # The bot ran before: both feeds are known and backfilled (no alerts for old news).
    async with App(config) as app:
        await app.prepare()
        await app.poll_once()

    feed_server.bodies["/bloomberg.xml"] = rss(BLOOMBERG, OLD)
    stop = asyncio.Event()
    async with DiscordEmulator([GUILD]) as emu:
        with emu.patch_discord():
            task = asyncio.create_task(
                run_all_in_one(
                    config, emu.token, stop=stop, bot_options={"guild_ready_timeout": 0.05}
                )
            )
            try:
                first = await emu.wait_for_message(
                    ALERTS, lambda m: "Communique" in m.text(), timeout=10
                )
                assert "Bloomberg" in first.text()
                feed_server.bodies["/reuters.xml"] = rss(REUTERS)
                edited = await emu.wait_for_message(
                    ALERTS, lambda m: "Reuters" in m.text() and "Bloomberg" in m.text(), timeout=10
                )
                assert edited.id == first.id
                assert len(emu.channel_messages(ALERTS)) == 1
                # Nobody was pinged by feed text.
                assert edited.allowed_mentions is not None
                assert not edited.allowed_mentions.get("parse")
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
