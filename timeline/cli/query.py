"""`timeline-bot match` and `timeline-bot search`: try a watch query, search the timeline."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

from timeline.cli import common
from timeline.domain.errors import BadQuery, ConfigError
from timeline.domain.query import Document, feed_source_names, highlight, parse_query
from timeline.domain.typed_dates import parse_when
from timeline.storage.engine import Database
from timeline.storage.models import GLOBAL_SCOPE
from timeline.usecases.search import MAX_PAGE, encode_cursor, search_stories
from timeline.usecases.settings import guild_zone
from timeline.usecases.views import HitView, SearchPage

log = logging.getLogger(__name__)

EX_MATCH = 0
EX_NO_MATCH = 1
EX_BAD_QUERY = 2
EX_CONFIG = 78
# The summary read from stdin is capped: a feed summary is never this long.
MAX_STDIN_CHARS = 1_000_000
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `match` and `search` commands."""
    p = sub.add_parser(
        "match",
        help="test a watch query against a title (and a summary on stdin)",
        description="Exit 0 if the query matches, 1 if not, 2 if the query is invalid.",
    )
    p.add_argument("query", help='the query, e.g. "NATO communique" or dual-use')
    p.add_argument("--title", default="", help="the item title")
    p.add_argument("--summary", help="the item summary (default: read stdin unless a tty)")
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME_OR_URL",
        help="feed name or URL for source: terms (repeatable)",
    )
    p.set_defaults(func=match_command)

    s = sub.add_parser("search", help="search the stored timeline with the query language")
    s.add_argument("query", help="the query, same language as watches")
    s.add_argument("--since", help="oldest publication time (2025-07-09, 7d, 24h, ...)")
    s.add_argument("--until", help="newest publication time (a date includes that day)")
    s.add_argument("--limit", type=int, default=20, help=f"at most N results (1-{MAX_PAGE})")
    s.add_argument(
        "--cursor",
        help="continue after the previous page (the cursor it printed on stderr as `next: ...`)",
    )
    s.add_argument(
        "--guild",
        type=int,
        action="append",
        metavar="ID",
        help="only feeds of this guild (and config-file feeds); default: everything",
    )
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(func=search_command)


def _aliases(args: argparse.Namespace) -> dict[str, str]:
    """Return the config's aliases when a config file is given or present, else none."""

    path = common.config_path(args)
    if not getattr(args, "config", None) and not os.path.exists(path):
        return {}
    return dict(common.load_settings(args).aliases)


def _source_names(values: list[str]) -> tuple[str, ...]:
    names: list[str] = []
    for value in values:
        if "://" in value:
            names.extend(feed_source_names(None, value))
        else:
            names.append(value)
    return tuple(names)


def match_command(args: argparse.Namespace) -> int:
    """Run `match`: print whether the query matches and which terms did."""
    try:
        aliases = _aliases(args)
    except ConfigError as exc:
        return common.report_config_error(exc)
    summary = args.summary
    if summary is None:
        summary = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read(MAX_STDIN_CHARS)
    return run_match(args.query, args.title, summary, _source_names(args.source), aliases)


def run_match(
    query_text: str,
    title: str,
    summary: str,
    sources: tuple[str, ...] = (),
    aliases: dict[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Match one item against a query; print the verdict; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        query = parse_query(query_text, aliases)
    except BadQuery as exc:
        print(f"invalid query: {exc}", file=err)
        return EX_BAD_QUERY
    result = query.match(Document(title, summary, sources))
    if result is None:
        print(f"no match: {query}", file=out)
        return EX_NO_MATCH
    print(f"match: {query}", file=out)
    if result.terms:
        print("terms: " + ", ".join(result.terms), file=out)
    if title:
        print("title: " + highlight(title, result.terms), file=out)
    return EX_MATCH


def search_command(args: argparse.Namespace) -> int:
    """Run `search` against the configured database."""

    settings = common.load_settings(args)
    return asyncio.run(
        _search_with_settings(
            settings.database.url, args, dict(settings.aliases), settings.discord.timezone
        )
    )


async def _search_with_settings(
    url: str, args: argparse.Namespace, aliases: dict[str, str], default_timezone: str
) -> int:
    db = Database(url)
    try:
        return await run_search(db, args, aliases, default_timezone=default_timezone)
    finally:
        await db.dispose()


async def run_search(
    db: Database,
    args: argparse.Namespace,
    aliases: dict[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    default_timezone: str = "UTC",
) -> int:
    """Search `db` as the `search` command does; print hits; return the exit code.

    A `--since`/`--until` date is a day in the guild's time zone (each `--guild`'s own when
    several are given; the config file's `[discord] timezone` without `--guild`).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    now = datetime.now(UTC)
    # Several --guild: each one's feeds and the config file's; none: every feed.
    guilds: list[int | None] = list(args.guild) if args.guild else [None]
    try:
        async with db.session() as session:
            pages = []
            for guild in guilds:
                zone = await guild_zone(
                    session, GLOBAL_SCOPE if guild is None else guild, default_timezone
                )
                since = parse_when(args.since, now, zone=zone) if args.since else None
                until = parse_when(args.until, now, end=True, zone=zone) if args.until else None
                pages.append(
                    await search_stories(
                        session,
                        guild,
                        args.query,
                        since=since,
                        until=until,
                        limit=args.limit,
                        cursor=args.cursor,
                        aliases=aliases,
                    )
                )
    except BadQuery as exc:
        print(f"invalid query: {exc}", file=err)
        return EX_BAD_QUERY
    page = pages[0] if len(pages) == 1 else _merge(pages, args.limit)
    hits = page.hits
    if args.json:
        json.dump([_hit_json(h) for h in hits], out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        bold = out.isatty()
        for hit in hits:
            _print_hit(hit, out, bold)
        if not hits:
            print(f"no entries match: {page.query}", file=out)
    if page.next_cursor:
        print(f"next: --cursor {page.next_cursor}", file=err)
    return 0


def _merge(pages: list[SearchPage], limit: int) -> SearchPage:
    """Merge the pages of several guilds, newest first, without repeating shared stories."""
    seen: dict[int, HitView] = {}
    for page in pages:
        for hit in page.hits:
            seen.setdefault(hit.entry_id, hit)
    hits = sorted(seen.values(), key=lambda h: (h.published_at, h.entry_id), reverse=True)
    more = len(hits) > limit or any(p.next_cursor for p in pages)
    hits = hits[:limit]
    cursor = encode_cursor(hits[-1].published_at, hits[-1].entry_id) if more and hits else None
    return SearchPage(pages[0].query, hits, cursor)


def _hit_json(hit: HitView) -> dict[str, object]:
    return {
        "entry_id": hit.entry_id,
        "event_id": hit.event_id,
        "published_at": hit.published_at.isoformat().replace("+00:00", "Z"),
        "feed": hit.feed_name,
        "title": hit.title,
        "summary": hit.summary,
        "link": hit.link,
        "terms": list(hit.terms),
        "title_highlighted": highlight(hit.title, hit.terms),
    }


def _print_hit(hit: HitView, out: TextIO, bold: bool) -> None:
    start, end = (_BOLD, _RESET) if bold else ("**", "**")
    when = hit.published_at.strftime("%Y-%m-%d %H:%M")
    print(
        f"{when}  [{_clean(hit.feed_name)}] {highlight(_clean(hit.title), hit.terms, start, end)}",
        file=out,
    )
    if hit.link:
        print(f"    {_clean(hit.link)}", file=out)


def _clean(text: str) -> str:
    """Drop control characters (escape sequences from hostile feeds) before printing."""
    return "".join(c if c.isprintable() else " " for c in text)
