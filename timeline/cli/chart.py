"""`timeline-bot chart`: the terminal twin of `/chart` (events per watch over time, as a PNG)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from timeline.app.config import Settings
from timeline.cli import common
from timeline.domain.typed_dates import parse_when
from timeline.storage.engine import Database
from timeline.storage.models import GLOBAL_SCOPE
from timeline.usecases import settings as settings_svc
from timeline.usecases.chart import BUCKETS, ChartData, chart_data, render_png

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `chart` command."""
    p = sub.add_parser("chart", help="draw events per watch over time as a PNG")
    p.add_argument("query", nargs="?", help="only events matching this query")
    p.add_argument(
        "--since",
        help="oldest event time: 2025-07-09, 30d, 24h, yesterday ... (default: fits the data, "
        "at most 30 days, or 26 weeks by week)",
    )
    p.add_argument("--until", help="newest event time (a date includes that whole day)")
    p.add_argument("--bucket", choices=BUCKETS, default="day", help="count per day or per week")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument(
        "--guild",
        type=int,
        default=GLOBAL_SCOPE,
        metavar="ID",
        help="act as this Discord guild (default 0: the config-file scope)",
    )
    p.set_defaults(func=chart_command)


def chart_command(args: argparse.Namespace) -> int:
    """Run `chart`: count, draw, write the PNG; return the exit code."""
    settings = common.load_settings(args)
    data = asyncio.run(load_chart(settings, args))
    png = render_png(data, data.title(args.query))
    try:
        Path(args.output).write_bytes(png)
    except OSError as exc:
        common.print_err(f"error: cannot write {args.output}: {exc.strerror}")
        return 1
    print(summary(data, len(png), args.output), file=sys.stderr)
    return common.EX_OK


async def load_chart(settings: Settings, args: argparse.Namespace) -> ChartData:
    """Count the events the chart shows, as the guild in `args.guild` sees them."""
    now = datetime.now(UTC)
    database = Database(settings.database.url)
    try:
        async with database.session() as session:
            # Days are the guild's: a date names that day in its time zone.
            zone = await settings_svc.guild_zone(session, args.guild, settings.discord.timezone)
            since = parse_when(args.since, now, zone=zone) if args.since else None
            until = parse_when(args.until, now, end=True, zone=zone) if args.until else None
            return await chart_data(
                session,
                args.guild,
                query=args.query,
                since=since,
                until=until,
                bucket=args.bucket,
                now=now,
                zone=zone,
            )
    finally:
        await database.dispose()


def summary(data: ChartData, size: int, output: str) -> str:
    """Describe what was drawn, in one line."""
    capped = " (capped: only the newest were counted)" if data.capped else ""
    return (
        f"wrote {size} bytes to {output}: {data.events} events{capped} in "
        f"{len(data.series)} series, per {data.bucket}, "
        f"{data.first_day():%Y-%m-%d} to {data.last_day():%Y-%m-%d}"
        + (f" ({data.zone})" if str(data.zone) != "UTC" else "")
    )
