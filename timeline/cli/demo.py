"""`timeline-bot demo`: the whole path, offline, in seconds.

Bundled sample feeds are served from a local HTTP server on 127.0.0.1 so the real fetcher runs
(conditional GET included); a temporary SQLite database holds the timeline. Round one records
what the feeds already carry without alerting; then the outlets publish the NATO draft
communique story and round two prints the alerts the bot would post.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import tempfile
from dataclasses import replace
from importlib import resources
from pathlib import Path

from aiohttp import web

from timeline.app.config import DatabaseSettings, FeedConfig, PollingSettings, Settings, WatchConfig
from timeline.app.wiring import App
from timeline.cli import common
from timeline.cli.poll import outcome_lines
from timeline.usecases.timeline import list_timeline

DEMO_FEEDS = (
    ("Bloomberg", "bloomberg"),
    ("Reuters", "reuters"),
    ("Export Control Monitor", "defense"),
)
NATO_CHANNEL = 100000000000000001
DUAL_USE_CHANNEL = 100000000000000002


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `demo` command."""
    demo = sub.add_parser("demo", help="run the offline demo (local feeds, temporary database)")
    demo.add_argument("--keep", metavar="DIR", help="keep the demo database in DIR")
    demo.set_defaults(func=demo_command)


class DemoFeedServer:
    """Serve the bundled feeds on 127.0.0.1 with ETags, and switch them to their next version."""

    def __init__(self) -> None:
        self.version = 1
        self.requests = 0
        self.not_modified = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    def body(self, slug: str) -> bytes:
        return (
            resources.files("timeline.cli")
            .joinpath("demo_data", f"{slug}_{self.version}.xml")
            .read_bytes()
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        slug = request.match_info["slug"]
        try:
            body = self.body(slug)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=body, headers={"ETag": etag, "Content-Type": "application/rss+xml"}
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{slug}.xml", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, slug: str) -> str:
        return f"http://127.0.0.1:{self.port}/{slug}.xml"


def demo_settings(server: DemoFeedServer, db_path: Path) -> Settings:
    """Settings for the demo: local feeds (127.0.0.1 explicitly allowed) and two watches."""
    return Settings(
        path="<demo>",
        database=DatabaseSettings(f"sqlite:///{db_path}"),
        polling=replace(PollingSettings(), allow_private=("127.0.0.1",), timeout_seconds=5.0),
        feeds=tuple(FeedConfig(name, server.url(slug)) for name, slug in DEMO_FEEDS),
        watches=(
            WatchConfig("nato-communique", "NATO communique", NATO_CHANNEL),
            WatchConfig("dual-use", "dual-use", DUAL_USE_CHANNEL),
        ),
    )


async def run_demo(workdir: Path, out: list[str] | None = None) -> int:
    """Run the demo in `workdir`; print (and collect into `out`) what happens."""

    def say(line: str = "") -> None:
        print(line)
        if out is not None:
            out.append(line)

    server = DemoFeedServer()
    await server.start()
    try:
        settings = demo_settings(server, workdir / "demo.db")
        async with App(settings) as app:
            await app.prepare()
            say(f"Serving {len(DEMO_FEEDS)} sample feeds on http://127.0.0.1:{server.port}/")
            say('Watches: "NATO communique" -> #nato-alerts, "dual-use" -> #exports')
            say()
            say("Round 1: first poll of each feed (stored silently, no flood of old news)")
            first = await app.poll_once()
            for line in outcome_lines(first.outcomes, as_json=False):
                say("  " + line)

            server.version = 2
            say()
            say(
                "The outlets publish new stories (Bloomberg and Reuters: the NATO draft communique)"
            )
            await app.store.make_all_due()
            second = await app.poll_once()
            alerts = [a for o in second.outcomes for a in o.alerts]
            say(f"Round 2: {len(alerts)} alerts to post")
            for line in outcome_lines(second.outcomes, as_json=False):
                say("  " + line)

            await app.store.make_all_due()
            third = await app.poll_once()
            unchanged = sum(o.outcome in ("not_modified", "unchanged") for o in third.outcomes)
            say()
            say(
                f"Round 3: nothing new; {unchanged} of {len(third.outcomes)} feeds answered "
                "304 Not Modified or an identical body (no parsing)"
            )

            say()
            say("Timeline (newest first):")
            async with app.db.session() as session:
                page = await list_timeline(session, 0, limit=20)
            for event in page.events:
                sources = ", ".join(sorted({s.feed_name for s in event.sources}))
                when = event.occurred_at.strftime("%Y-%m-%d %H:%M")
                watches = f"  [{', '.join(event.watches)}]" if event.watches else ""
                say(f"  {when}  #{event.id} {event.title}  ({sources}){watches}")
    finally:
        await server.stop()
    return common.EX_OK


def demo_command(args: argparse.Namespace) -> int:
    """Run the offline demo."""
    if args.log_level == "INFO":
        # The demo's own lines tell the story; routine log lines would drown them.
        logging.getLogger().setLevel(logging.WARNING)
    if args.keep:
        path = Path(args.keep)
        path.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_demo(path))
    with tempfile.TemporaryDirectory(prefix="timeline-demo-") as tmp:
        return asyncio.run(run_demo(Path(tmp)))
