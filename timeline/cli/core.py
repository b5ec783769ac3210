"""`config check`, `db upgrade` and `run`: set-up and the long-running bot."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timeline.app.config import Settings
from timeline.cli import common
from timeline.storage.migrate import upgrade
from timeline.usecases.config_io import SyncReport, sync_config
from timeline.usecases.polling import FeedOutcome

if TYPE_CHECKING:
    from discordbot.bot import TimelineBot

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the set-up commands."""
    config = sub.add_parser("config", help="check or export the configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate config.toml and report what it holds")
    check.add_argument(
        "--token",
        action="store_true",
        help="also require the Discord token variable (and, with [web], its secret) to be set",
    )
    check.set_defaults(func=config_check)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser(
        "upgrade",
        help="apply Alembic migrations up to head, then sync the config file's feeds and watches",
    )
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(func=db_upgrade)

    run = sub.add_parser("run", help="run the Discord bot with the feed scheduler (all-in-one)")
    run.set_defaults(func=run_bot)


def config_check(args: argparse.Namespace) -> int:
    """Validate the config and print what was checked; exit 78 listing every problem."""
    settings = common.load_settings(args)
    if args.token:
        settings.discord.token(settings.path)
        common.web_secret(settings)
    web = f", web timeline at {settings.web.public_url}" if settings.web.enabled else ""
    print(f"{settings.path}: OK: {summary(settings)}{web}")
    return common.EX_OK


def summary(settings: Settings) -> str:
    """Say what the loader checked: how many feeds, watches, aliases, digests and guilds."""
    parts = [
        (len(settings.feeds), "feed", "feeds", " (names, URLs)"),
        (len(settings.watches), "watch", "watches", " (queries, channel and role ids)"),
        (len(settings.aliases), "alias", "aliases", " (queries, cycles)"),
        (len(settings.alerts.digest_cron), "digest", "digests", " (cron, UTC)"),
        (len(settings.discord.guild_ids), "guild", "guilds", ""),
    ]
    return ", ".join(
        f"{n} {one if n == 1 else many}{what if n else ''}" for n, one, many, what in parts
    )


def db_upgrade(args: argparse.Namespace) -> int:
    """Upgrade the configured database to the target revision, then sync the config file.

    Exit 78 when the sync refused an entry of the file (the rest is synced).
    """
    settings = common.load_settings(args)
    upgrade(settings.database.url, args.revision)
    print(f"database upgraded to {args.revision}")
    if args.revision != "head":
        return common.EX_OK
    report = asyncio.run(_sync(settings, common.accept_config(args)))
    print(
        f"config synced: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.retired)} retired, {len(report.revived)} revived"
    )
    if not report.errors:
        return common.EX_OK
    for error in report.errors:
        common.print_err(error)
    return common.EX_CONFIG


async def _sync(settings: Settings, accept_config: bool) -> SyncReport:
    db = common.open_database(settings)
    try:
        async with db.session() as session:
            return await sync_config(session, settings, accept=accept_config)
    finally:
        await db.dispose()


def run_bot(args: argparse.Namespace) -> int:
    """Run the Discord bot and the scheduler until interrupted."""
    from timeline.cli.ops import bot_start  # noqa: PLC0415 (ops imports this module)

    started = bot_start(args)
    if started is None:
        return common.EX_USAGE
    settings, token = started
    asyncio.run(run_all_in_one(settings, token, accept_config=common.accept_config(args)))
    return common.EX_OK


async def run_all_in_one(
    settings: Settings,
    token: str,
    *,
    stop: asyncio.Event | None = None,
    bot_options: dict[str, Any] | None = None,
    accept_config: bool = False,
) -> None:
    """Poll feeds and run the Discord bot in one process until `stop` is set (or a signal)."""
    from discordbot.bot import make_bot  # noqa: PLC0415 (discord.py: only for the bot)
    from timeline.app.ops_http import OpsServer  # noqa: PLC0415 (aiohttp: only for the bot)
    from timeline.app.wiring import App  # noqa: PLC0415 (aiohttp: only for the bot)
    from webui.server import WebServer  # noqa: PLC0415 (aiohttp: only for the bot)

    async with App(settings) as app:
        await app.prepare(accept_config=accept_config)
        bot = make_bot(settings, app.db, **(bot_options or {}))

        async def wake_delivery(outcome: FeedOutcome) -> None:
            # Alerts (or edits) were committed with the feed's ingest: deliver them now, not at
            # the next sweep.
            if outcome.alerts or outcome.edited_alerts:
                bot.delivery.notify()

        app.poller.on_outcome = wake_delivery
        checks = {"discord": lambda: bot.is_ready() and not bot.is_closed()}
        async with (
            OpsServer(settings.metrics, app.db, role="all-in-one", checks=checks),
            WebServer(settings, app.db),
        ):
            try:
                # Poll only once the gateway is up, so the first alerts have somewhere to go.
                await serve_discord(bot, token, stop, on_ready=app.start_scheduler)
            finally:
                if app.scheduler is not None:
                    app.scheduler.shutdown(wait=False)
        log.info("stopped")


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """Return `stop`, or a new event that SIGINT and SIGTERM set."""
    if stop is not None:
        return stop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_discord(
    bot: TimelineBot,
    token: str,
    stop: asyncio.Event | None = None,
    *,
    on_ready: Callable[[], object] | None = None,
) -> None:
    """Run `bot` until `stop` is set (or a signal) or the bot ends; re-raise how it ended.

    `on_ready` runs once the gateway is up. The bot is closed on the way out, which stops
    delivery and hands back its outbox claims.
    """
    stop = stop_on_signals(stop)
    runner = asyncio.create_task(bot.start(token), name="discord")
    stopper = asyncio.create_task(stop.wait(), name="stop")
    ready = asyncio.create_task(bot.wait_until_ready(), name="ready")
    try:
        await asyncio.wait({ready, runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and not ready.cancelled():
            if on_ready is not None:
                on_ready()
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
        stopper.cancel()
        await bot.close()
        await asyncio.gather(runner, return_exceptions=True)
    if runner.done() and not runner.cancelled() and runner.exception() is not None:
        raise runner.exception()  # type: ignore[misc]
