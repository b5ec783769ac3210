"""Alert latency: from a story appearing on a feed to its message in the Discord emulator.

The real pieces: the poller and ingest write the outbox row, the real `TimelineBot` (discord.py)
delivers it to the in-repo Discord emulator, woken by the poller as `timeline-bot run` does
(`timeline/cli/core.py`: `on_outcome` -> `bot.delivery.notify()`). For each trial a story with a unique
token is injected into one feed, the farm changes its usual share of feeds, and one round runs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

from bench.farm import Vocabulary, farm_control
from bench.measure import percentile
from bench.poll import SeedStore, feed_urls, setup_database
from discordbot.bot import make_bot
from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller
from tests.discord_emulator import DiscordEmulator, default_guild
from timeline.app.config import AlertSettings, DiscordSettings, PollingSettings, Settings
from timeline.storage.models import Watch
from timeline.storage.search import sync_search_index
from timeline.usecases.polling import FeedOutcome, PollStore

log = logging.getLogger(__name__)

LATENCY_WORD = "zebulonwatch"  # a word no generated story contains
_VOCAB = Vocabulary(seed=99)


@dataclass
class AlertConfig:
    """Which farm feeds to poll, where the database goes, how many trials."""

    ports: list[int]
    feeds: int
    db_path: str
    trials: int = 5
    share: float = 0.2
    parse_workers: int = 2
    skip_seen_items: bool = True


async def run_alerts(config: AlertConfig) -> dict[str, Any]:
    """Measure, per trial, the time from round start / feed commit to the emulator's message."""
    guild = default_guild()
    alerts_channel = guild.channel("alerts").id
    general = guild.channel("general").id
    urls = feed_urls(config.ports, config.feeds)
    # The farm's watch phrases make the usual background alerts in #general.
    db = await setup_database(f"sqlite:///{config.db_path}", urls, channel_id=general)
    async with db.session() as session:
        session.add(Watch(name="latency", query=LATENCY_WORD, channel_id=alerts_channel))
    polling = PollingSettings(
        allow_private=("127.0.0.1",), jitter=0.0, timeout_seconds=10.0, per_host_concurrency=4
    )
    settings = Settings(
        polling=polling,
        discord=DiscordSettings(guild_ids=(guild.id,)),
        # A burst digest would hide the per-alert message we time.
        alerts=AlertSettings(burst_threshold=1000),
    )
    loop = asyncio.get_running_loop()
    trials: list[dict[str, Any]] = []
    try:
        async with DiscordEmulator([guild]) as emu:
            bot = make_bot(
                settings, db, cogs_package=None, sync_commands=False, guild_ready_timeout=0.05
            )
            fetch = FetchSettings(
                timeout_seconds=polling.timeout_seconds,
                per_host_concurrency=polling.per_host_concurrency,
                allow_private=polling.allow_private,
                parse_workers=config.parse_workers,
                skip_seen_items=config.skip_seen_items,
            )
            async with emu.run_bot(bot), Fetcher(fetch) as fetcher:
                store = PollStore(db, polling, owner="bench-alerts")
                async with db.session() as session:
                    await sync_search_index(session)  # stamp the index format (see poll.py)
                await Poller(SeedStore(store), fetcher, concurrency=20).run_round()
                await store.begin_round()
                committed: dict[int, float] = {}

                async def wake_delivery(outcome: FeedOutcome) -> None:
                    # As `timeline-bot run` wires it (timeline/cli/core.py).
                    if outcome.alerts or outcome.edited_alerts:
                        committed.setdefault(outcome.feed_id, loop.time())
                        bot.delivery.notify()

                poller = Poller(store, fetcher, concurrency=20, on_outcome=wake_delivery)
                for n in range(config.trials):
                    trials.append(
                        await _trial(emu, poller, store, config, n, alerts_channel, committed)
                    )
    finally:
        await db.dispose()
    from_commit = [t["from_commit_s"] for t in trials]
    after_round = [t["after_round_end_s"] for t in trials]
    return {
        "feeds": len(urls),
        "trials": trials,
        "from_commit_p50_s": percentile(from_commit, 50),
        "from_commit_max_s": max(from_commit),
        "from_round_start_p50_s": percentile([t["from_round_start_s"] for t in trials], 50),
        "after_round_end_p50_s": percentile(after_round, 50),
        "after_round_end_max_s": max(after_round),
    }


async def _trial(
    emu: DiscordEmulator,
    poller: Poller,
    store: PollStore,
    config: AlertConfig,
    n: int,
    channel: int,
    committed: dict[int, float],
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    token = uuid.uuid4().hex[:10]
    # Each trial's story must be news of its own, or clustering joins it to the last one.
    rng = random.Random(token)
    title = f"{_VOCAB.sentence(rng, 8, title_case=True)} {LATENCY_WORD} {token}"
    summary = _VOCAB.sentence(rng, 25)
    injected = await loop.run_in_executor(
        None,
        lambda: farm_control(
            config.ports,
            "inject",
            feed=(n * 37) % config.feeds,
            title=title,
            summary=summary,
        ),
    )
    await loop.run_in_executor(
        None, lambda: farm_control(config.ports, "advance", share=config.share)
    )
    await store.make_all_due()
    committed.clear()
    seen_at: list[float] = []
    waiter = asyncio.create_task(
        emu.wait_for_message(channel, lambda m: token in m.text(), timeout=60)
    )
    waiter.add_done_callback(lambda _: seen_at.append(loop.time()))
    started = loop.time()
    report = await poller.run_round()
    ended = loop.time()
    await waiter
    feed_id = next(
        (o.feed_id for o in report.outcomes if any(token in a.title for a in o.alerts)), None
    )
    commit = committed.get(feed_id, ended) if feed_id is not None else ended
    trial = {
        "feed": injected["feed"],
        "round_s": ended - started,
        "from_round_start_s": seen_at[0] - started,
        "from_commit_s": seen_at[0] - commit,
        "after_round_end_s": seen_at[0] - ended,
    }
    log.info("alert latency trial %d: %s", n, trial)
    return trial
