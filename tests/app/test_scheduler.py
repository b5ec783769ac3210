"""The scheduler job keeps ticking through failing feeds; the good feed keeps being polled."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from tests.helpers import FeedServer, rss
from timeline.app.config import DatabaseSettings, FeedConfig, PollingSettings, Settings
from timeline.app.wiring import App
from timeline.usecases.polling import FeedOutcome


async def test_scheduler_survives_failing_feeds(tmp_path: Path, feed_server: FeedServer) -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500, text="oops")

    feed_server.handlers["/broken.xml"] = broken
    feed_server.bodies["/good.xml"] = rss(("1", "One", "s"))
    feed_server.bodies["/html.xml"] = b"<html><body>not a feed</body></html>"
    settings = Settings(
        path="<test>",
        database=DatabaseSettings(f"sqlite:///{tmp_path / 's.db'}"),
        # Interval 0 (set directly, below the TOML minimum): every tick finds every feed due.
        polling=replace(
            PollingSettings(),
            allow_private=("127.0.0.1",),
            interval_seconds=0,
            min_interval_seconds=0,
            backoff_max_seconds=0,
            jitter=0.0,
            tick_seconds=0.05,
        ),
        feeds=(
            FeedConfig("good", feed_server.url("/good.xml")),
            FeedConfig("broken", feed_server.url("/broken.xml")),
            FeedConfig("html", feed_server.url("/html.xml")),
        ),
    )
    seen: Counter[tuple[str, str]] = Counter()
    enough = asyncio.Event()

    async def observe(outcome: FeedOutcome) -> None:
        seen[(outcome.name, outcome.outcome)] += 1
        polled_good = seen[("good", "ok")] + seen[("good", "not_modified")]
        if polled_good >= 3 and seen[("broken", "error")] >= 3 and seen[("html", "error")] >= 3:
            enough.set()

    async with App(settings) as app:
        await app.prepare()
        app.poller.on_outcome = observe
        scheduler = app.start_scheduler()
        await asyncio.wait_for(enough.wait(), 20)
        assert scheduler.running
        assert scheduler.get_job("poll") is not None
    assert seen[("good", "ok")] == 1  # then 304s: the body is never parsed again
