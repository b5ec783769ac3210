"""`timeline-bot story …`: the terminal twin of `/story` (same use cases, text or --json)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from timeline.app.config import Settings
from timeline.cli import common
from timeline.cli.admin import _actor, _iso, _json_line, _print_event, _run, _write, safe
from timeline.storage.models import GLOBAL_SCOPE
from timeline.usecases import settings as settings_svc
from timeline.usecases import storylines as story_svc
from timeline.usecases.chart import render_png
from timeline.usecases.export import FORMATS, event_json
from timeline.usecases.storylines import StorylineSummary


def _scope_parent(actor: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--guild",
        type=int,
        default=GLOBAL_SCOPE,
        metavar="ID",
        help="act as this Discord guild (default 0: the config-file scope)",
    )
    if actor:
        parent.add_argument("--actor", default=None, help="who is making the change (for the log)")
    return parent


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `story list|show|chart|export|rename|merge|split|detach`."""
    read, write = [_scope_parent(False)], [_scope_parent(True)]
    story = sub.add_parser("story", help="storylines: events about one subject over weeks")
    s = story.add_subparsers(dest="story_command", metavar="ACTION", required=True)

    p = s.add_parser("list", parents=read, help="storylines, most recently continued first")
    p.add_argument("--all", action="store_true", help="include storylines inactive for 30 days")
    p.add_argument("--limit", type=int, default=25, help="storylines to show (default 25)")
    p.add_argument("--json", action="store_true", help="one JSON object per storyline per line")
    p.set_defaults(func=_run(cmd_story_list))

    p = s.add_parser("show", parents=read, help="a storyline's events, oldest first")
    p.add_argument("id", type=int, help="the storyline's number")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_run(cmd_story_show))

    p = s.add_parser("chart", parents=read, help="draw a storyline's events over time (PNG)")
    p.add_argument("id", type=int, help="the storyline's number")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.set_defaults(func=_run(cmd_story_chart))

    p = s.add_parser("export", parents=read, help="a storyline as csv, json, ics or md")
    p.add_argument("id", type=int, help="the storyline's number")
    p.add_argument("--format", choices=FORMATS, default="md", help="file format (default md)")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.set_defaults(func=_run(cmd_story_export))

    p = s.add_parser("rename", parents=write, help="give a storyline a title of your own")
    p.add_argument("id", type=int, help="the storyline's number")
    p.add_argument("title", help="the new title (up to 200 characters)")
    p.add_argument("--json", action="store_true", help="print the storyline as JSON")
    p.set_defaults(func=_run(cmd_story_rename))

    p = s.add_parser("merge", parents=write, help="merge storyline OTHER into KEEP")
    p.add_argument("keep", type=int, help="the storyline that stays")
    p.add_argument("other", type=int, help="the storyline merged into it")
    p.add_argument("--json", action="store_true", help="print the kept storyline as JSON")
    p.set_defaults(func=_run(cmd_story_merge))

    p = s.add_parser("split", parents=write, help="move EVENT and later events to a new storyline")
    p.add_argument("id", type=int, help="the storyline's number")
    p.add_argument("event", type=int, help="the first event of the new storyline")
    p.add_argument("--json", action="store_true", help="print the new storyline as JSON")
    p.set_defaults(func=_run(cmd_story_split))

    p = s.add_parser("detach", parents=write, help="take one event out of its storyline")
    p.add_argument("event", type=int, help="the event's number")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_run(cmd_story_detach))


def _who(args: argparse.Namespace) -> str:

    return str(args.actor or _actor())


def summary_json(s: StorylineSummary) -> dict[str, Any]:
    """A storyline summary as a JSON-ready dict."""
    return {
        "id": s.id,
        "title": s.title,
        "title_edited": s.title_edited,
        "events": s.events,
        "first_at": common.iso(s.first_at),
        "last_at": common.iso(s.last_at),
        "watches": list(s.watches),
    }


def _print_summary(s: StorylineSummary) -> None:
    watches = f"  watches: {', '.join(s.watches)}" if s.watches else ""
    print(
        safe(
            f"#{s.id:<6} {s.events:>4} events  {_iso(s.first_at)} .. {_iso(s.last_at)}  "
            f"{s.title}{watches}"
        )
    )


def _emit(s: StorylineSummary, args: argparse.Namespace, message: str) -> int:
    if getattr(args, "json", False):
        _json_line(summary_json(s))
    else:
        print(safe(message))
    return common.EX_OK


async def cmd_story_list(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """List storylines."""
    stories = await story_svc.list_storylines(
        session, args.guild, active_only=not args.all, limit=args.limit
    )
    for s in stories:
        if args.json:
            _json_line(summary_json(s))
        else:
            _print_summary(s)
    if not stories and not args.json:
        print("no storylines" + ("" if args.all else " active in the last 30 days (try --all)"))
    return common.EX_OK


async def cmd_story_show(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Show one storyline with its events."""
    detail = await story_svc.show_storyline(session, args.guild, args.id)
    if args.json:
        doc = summary_json(detail.storyline)
        doc["events"] = []
        for e in detail.events:
            ev = event_json(e)
            for src, view in zip(ev["sources"], e.sources, strict=True):
                src["adds"] = view.brief
            doc["events"].append(ev)
        _json_line(doc)
        return common.EX_OK
    _print_summary(detail.storyline)
    for e in detail.events:
        _print_event(e)
        for src in e.sources:
            if src.brief:
                print(safe(f"        + {src.feed_name} adds: {src.brief}"))
    return common.EX_OK


async def cmd_story_chart(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Draw a storyline's events over time."""
    row = await story_svc.get_storyline(session, args.guild, args.id)
    zone = await settings_svc.guild_zone(session, args.guild, settings.discord.timezone)
    data = await story_svc.storyline_chart(session, args.guild, args.id, zone=zone)
    png = await asyncio.to_thread(render_png, data, f"Storyline #{row.id}: {row.title}"[:90])
    try:
        await asyncio.to_thread(Path(args.output).write_bytes, png)
    except OSError as exc:
        common.print_err(f"error: cannot write {args.output}: {exc.strerror}")
        return 1
    common.print_err(f"wrote {len(png)} bytes to {args.output}: {data.events} events")
    return common.EX_OK


async def cmd_story_export(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Export one storyline."""
    zone = await settings_svc.guild_zone(session, args.guild, settings.discord.timezone)
    _, data = await story_svc.export_storyline(
        session, args.guild, args.id, args.format, now=datetime.now(UTC), zone=zone
    )
    _write(data, args.output)
    return common.EX_OK


async def cmd_story_rename(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Rename a storyline."""
    s = await story_svc.rename_storyline(session, args.guild, args.id, args.title, _who(args))
    return _emit(s, args, f"storyline #{s.id} is now {s.title!r}")


async def cmd_story_merge(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Merge two storylines."""
    s = await story_svc.merge_storylines(session, args.guild, args.keep, args.other, _who(args))
    return _emit(s, args, f"merged storyline #{args.other} into #{s.id}: {s.events} events")


async def cmd_story_split(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Split a storyline at an event."""
    s = await story_svc.split_storyline(session, args.guild, args.id, args.event, _who(args))
    return _emit(s, args, f"new storyline #{s.id} ({s.title!r}) with {s.events} events")


async def cmd_story_detach(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Take an event out of its storyline."""
    left = await story_svc.detach_event(session, args.guild, args.event, _who(args))
    if args.json:
        _json_line({"event": args.event, "left_storyline": left})
    else:
        print(f"event #{args.event} is no longer part of storyline #{left}")
    return common.EX_OK
