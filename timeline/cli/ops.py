"""Past one machine: `poller`, `discord`, `db copy`, and `health` for container checks.

`timeline-bot run` is one process doing everything. On PostgreSQL the same work splits into
processes: any number of `timeline-bot poller` (polling and ingest; they share the due feeds
through leases claimed with SKIP LOCKED) and one `timeline-bot discord` (gateway, slash commands
and outbox delivery, woken by PostgreSQL NOTIFY). `timeline-bot db copy` moves a SQLite
database to PostgreSQL.

Test-only: `timeline-bot discord` (and `timeline-bot run`) points discord.py at another API and gateway when
`TIMELINE_BOT_DISCORD_API` (REST base URL, e.g. http://127.0.0.1:PORT/api/v10) and
`TIMELINE_BOT_DISCORD_GATEWAY` (ws:// URL) are set; the end-to-end tests use this to run the
real process against the in-repo Discord emulator. Never set them in production.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import urllib.error
import urllib.request
from typing import Any

from timeline.app.config import PollingSettings, Settings, redact_url
from timeline.cli import common
from timeline.cli.core import serve_discord, stop_on_signals
from timeline.storage.copy import copy_database
from timeline.storage.engine import Database
from timeline.storage.notify import OutboxListener, is_postgres

log = logging.getLogger(__name__)

API_ENV = "TIMELINE_BOT_DISCORD_API"
GATEWAY_ENV = "TIMELINE_BOT_DISCORD_GATEWAY"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `poller`, `discord` and `db copy`."""
    poller = sub.add_parser("poller", help="poll feeds and ingest only (run several on PostgreSQL)")
    poller.add_argument(
        "--batch",
        type=int,
        help="feeds claimed at a time (default: twice polling.concurrency)",
    )
    poller.set_defaults(func=poller_command)

    discord = sub.add_parser(
        "discord", help="run the Discord gateway, commands and alert delivery only"
    )
    discord.set_defaults(func=discord_command)

    health = sub.add_parser(
        "health",
        help="ask a running process's /healthz; exit 0 when healthy (for Docker or systemd)",
        description=(
            "GET /healthz of a running `run`, `poller` or `discord` process and exit 0 when it "
            "answers 200, 1 otherwise. The address is [metrics] host and port of the config "
            "(0.0.0.0 or :: is asked on the loopback address), or --url."
        ),
    )
    health.add_argument("--url", help="base URL of the endpoint (default: from [metrics])")
    health.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)"
    )
    health.set_defaults(func=health_command)

    _register_db_copy(sub)


def _register_db_copy(sub: Any) -> None:
    db = sub.choices.get("db")
    if db is None:
        db = sub.add_parser("db", help="database maintenance")
        db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    actions = [a for a in db._actions if isinstance(a, argparse._SubParsersAction)]
    p = actions[0].add_parser(
        "copy",
        help="copy every table to another database (SQLite -> PostgreSQL)",
        description=(
            "Copy the whole timeline to another database, migrated to head first: tables in "
            "foreign-key order, PostgreSQL sequences reset, search index rebuilt. Stop the "
            "bot first."
        ),
    )
    p.add_argument(
        "--from",
        dest="source",
        help="source database URL (default: database.url of the config)",
    )
    p.add_argument("--to", dest="target", required=True, help="target database URL")
    p.add_argument(
        "--force", action="store_true", help="empty a target that already holds rows first"
    )
    p.add_argument("--batch", type=int, default=2000, help="rows per insert (default 2000)")
    p.set_defaults(func=db_copy_command)


# -- health ---------------------------------------------------------------------------------


def health_url(settings: Settings) -> str | None:
    """The /healthz URL of the process configured by `settings`, or None without a port."""
    port = settings.metrics.port
    if not port:
        return None
    host = settings.metrics.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def health_command(args: argparse.Namespace) -> int:
    """Exit 0 when the process's /healthz answers 200; print what it said either way."""

    if args.url:
        url = args.url.rstrip("/")
        url = url if url.endswith("/healthz") else f"{url}/healthz"
    else:
        found = health_url(common.load_settings(args))
        if found is None:
            common.print_err("no [metrics] port in the config: the process serves no /healthz")
            return common.EX_CONFIG
        url = found
    if not url.startswith(("http://", "https://")):
        common.print_err(f"--url must be an http(s) URL, not {url!r}")
        return common.EX_USAGE
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:
            print(resp.read(4096).decode("utf-8", "replace"))
            return common.EX_OK
    except urllib.error.HTTPError as exc:
        common.print_err(
            f"unhealthy: {url} answered {exc.code}: {exc.read(4096).decode('utf-8', 'replace')}"
        )
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        common.print_err(f"unhealthy: {url} did not answer: {reason}")
    return 1


# -- poller ---------------------------------------------------------------------------------


def claim_batch(polling: PollingSettings) -> int:
    """Feeds one poller claims at a time: enough to keep its fetch slots busy, no more."""
    return max(polling.concurrency * 2, 1)


async def run_poller(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    batch: int | None = None,
    accept_config: bool = False,
) -> None:
    """Poll and ingest until `stop` is set (or SIGINT/SIGTERM), serving /healthz if configured."""
    from timeline.app.ops_http import OpsServer  # noqa: PLC0415 (aiohttp: only for the poller)
    from timeline.app.wiring import App  # noqa: PLC0415 (aiohttp: only for the poller)

    stop = stop_on_signals(stop)
    async with App(settings) as app:
        await app.prepare(accept_config=accept_config)
        app.poller.batch = batch or claim_batch(settings.polling)
        if not is_postgres(settings.database.url):
            log.warning("poller on SQLite: run one poller only (SQLite has one writer)")
        async with OpsServer(settings.metrics, app.db, role="poller"):
            log.info("poller %s started (batch %d)", app.store.owner, app.poller.batch)
            await app.run_polling(stop)
    log.info("poller stopped")


def poller_command(args: argparse.Namespace) -> int:
    """Run a poller process."""
    settings = common.load_settings(args)
    if args.batch is not None and args.batch < 1:
        common.print_err("--batch must be at least 1")
        return common.EX_USAGE
    asyncio.run(run_poller(settings, batch=args.batch, accept_config=common.accept_config(args)))
    return common.EX_OK


# -- discord --------------------------------------------------------------------------------


def patch_discord_endpoints(environ: dict[str, str] | None = None) -> bool:
    """Point discord.py at the API and gateway named by the test-only variables, if set."""
    env = os.environ if environ is None else environ
    api = env.get(API_ENV, "").strip()
    gateway = env.get(GATEWAY_ENV, "").strip()
    if not api and not gateway:
        return False
    import discord.gateway  # noqa: PLC0415 (discord.py: only for the bot)
    import discord.http  # noqa: PLC0415 (discord.py: only for the bot)
    import yarl  # noqa: PLC0415 (discord.py: only for the bot)

    if api:
        if not api.startswith(("http://", "https://")):
            raise ValueError(f"{API_ENV} must be an http(s) URL")
        discord.http.Route.BASE = api.rstrip("/")
    if gateway:
        if not gateway.startswith(("ws://", "wss://")):
            raise ValueError(f"{GATEWAY_ENV} must be a ws(s) URL")
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    log.warning("Discord endpoints overridden for testing: api=%s gateway=%s", api, gateway)
    return True


async def run_discord(
    settings: Settings,
    token: str,
    *,
    stop: asyncio.Event | None = None,
    bot_options: dict[str, Any] | None = None,
    accept_config: bool = False,
) -> None:
    """Run the gateway, the commands and outbox delivery until `stop` (or a signal)."""
    from discordbot.bot import make_bot  # noqa: PLC0415 (discord.py: only for the bot)
    from timeline.app.ops_http import OpsServer  # noqa: PLC0415 (aiohttp: only for the bot)
    from timeline.app.wiring import prepare_database  # noqa: PLC0415 (aiohttp: only for the bot)
    from webui.server import WebServer  # noqa: PLC0415 (aiohttp: only for the bot)

    db = Database(settings.database.url)
    try:
        await prepare_database(settings, db, accept_config=accept_config)
        bot = make_bot(settings, db, **(bot_options or {}))
        checks = {"discord": lambda: bot.is_ready() and not bot.is_closed()}
        listener = (
            OutboxListener(settings.database.url, bot.delivery.notify)
            if is_postgres(settings.database.url)
            else None
        )
        if listener is None:
            log.warning(
                "database is not PostgreSQL: alerts written by other processes are picked up "
                "by the %.0f s sweep only",
                settings.alerts.delivery_interval_seconds,
            )
        else:
            listener.start()
        try:
            async with (
                OpsServer(settings.metrics, db, role="discord", checks=checks),
                WebServer(settings, db),
            ):
                await serve_discord(bot, token, stop)
        finally:
            if listener is not None:
                await listener.stop()
    finally:
        await db.dispose()
    log.info("discord process stopped")


def bot_start(args: argparse.Namespace) -> tuple[Settings, str] | None:
    """Settings and token for a process that runs the Discord bot (`run`, `discord`): the
    token and the web secret masked in logs, discord.py pointed at the test endpoints if
    set. None (the error printed) when those endpoints are wrong."""
    settings = common.load_settings(args)
    token = settings.discord.token(settings.path)
    common.SECRETS.add(token)
    common.web_secret(settings)
    try:
        patch_discord_endpoints()
    except ValueError as exc:
        common.print_err(f"error: {exc}")
        return None
    return settings, token


def discord_command(args: argparse.Namespace) -> int:
    """Run the Discord process."""
    started = bot_start(args)
    if started is None:
        return common.EX_USAGE
    settings, token = started
    asyncio.run(run_discord(settings, token, accept_config=common.accept_config(args)))
    return common.EX_OK


# -- db copy --------------------------------------------------------------------------------


def db_copy_command(args: argparse.Namespace) -> int:
    """Copy the database named by --from (or the config) to --to."""
    source = args.source or common.load_settings(args).database.url
    if args.batch < 1:
        common.print_err("--batch must be at least 1")
        return common.EX_USAGE

    def progress(table: str, rows: int) -> None:
        print(f"  {table}: {rows} rows")

    print(f"copying {redact_url(source)} -> {redact_url(args.target)}")
    report = asyncio.run(
        copy_database(source, args.target, force=args.force, batch=args.batch, progress=progress)
    )
    print(
        f"copied {report.rows} rows in {len(report.tables)} tables, indexed {report.indexed} "
        f"entries for search in {report.seconds:.1f} s"
        + (" (target emptied first)" if report.emptied else "")
    )
    return common.EX_OK
