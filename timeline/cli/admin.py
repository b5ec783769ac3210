"""Terminal twins of the Discord commands: timeline, watch, feed, alias, event, export, status.

Every command calls the same `timeline.usecases` function its slash command does, in guild 0
(the config-file scope) unless `--guild` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, tzinfo
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from timeline.app.config import Settings
from timeline.cli import common
from timeline.domain.errors import BadQuery
from timeline.domain.typed_dates import parse_when
from timeline.storage.engine import Database
from timeline.storage.models import GLOBAL_SCOPE
from timeline.usecases import aliases as alias_svc
from timeline.usecases import events as event_svc
from timeline.usecases import feeds as feed_svc
from timeline.usecases import settings as settings_svc
from timeline.usecases import watches as watch_svc
from timeline.usecases.config_io import export_config_toml
from timeline.usecases.export import FORMATS, event_json, export_events, render_markdown
from timeline.usecases.opml import export_opml, import_opml
from timeline.usecases.status import status as status_svc
from timeline.usecases.timeline import list_timeline
from timeline.usecases.views import EventView

log = logging.getLogger(__name__)

Command = Callable[[AsyncSession, argparse.Namespace, Settings], Awaitable[int]]
MAX_UPLOAD = 2 * 1024 * 1024


# --- plumbing -----------------------------------------------------------------------------------


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    """Wrap an async command: load settings, open the database, one transaction, dispose."""

    def handler(args: argparse.Namespace) -> int:
        settings = common.load_settings(args)
        return asyncio.run(_with_session(command, args, settings))

    handler.__doc__ = command.__doc__
    return handler


async def _with_session(command: Command, args: argparse.Namespace, settings: Settings) -> int:
    database = Database(settings.database.url)
    try:
        async with database.session() as session:
            return await command(session, args, settings)
    finally:
        await database.dispose()


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def safe(text: object) -> str:
    """Drop control characters (terminal escape sequences) from text printed to a terminal."""
    return "".join(
        " " if ch in "\t\n\r" else ch
        for ch in str(text)
        if ch in "\t\n\r" or unicodedata.category(ch) not in ("Cc", "Cf")
    )


def _when(
    value: str | None, now: datetime, *, end: bool = False, zone: tzinfo = UTC
) -> datetime | None:
    return parse_when(value, now, end=end, zone=zone) if value else None


async def _zone(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> tzinfo:
    """The time zone of `--guild` (its own, or the config file's [discord] timezone)."""
    return await settings_svc.guild_zone(session, args.guild, settings.discord.timezone)


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _day_heading(day: date, zone: tzinfo) -> str:
    return f"== {WEEKDAYS[day.weekday()]} {day.isoformat()} ({zone}) =="


def _iso(value: datetime | None) -> str:
    return common.iso(value) or "-"


def _write(data: bytes, output: str | None) -> None:
    if output and output != "-":
        Path(output).write_bytes(data)
        print(f"wrote {len(data)} bytes to {output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _read_file(path: str) -> bytes:
    source = Path(path)
    try:
        size = source.stat().st_size
        if size > MAX_UPLOAD:
            raise BadQuery(f"{path} is too large ({size} bytes, at most {MAX_UPLOAD})")
        return source.read_bytes()
    except OSError as exc:
        raise BadQuery(f"cannot read {path}: {exc.strerror}") from None


def _json_line(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str))


def _print_event(event: EventView, zone: tzinfo = UTC) -> None:
    sources = ", ".join(s.feed_name for s in event.sources) or ("manual" if event.manual else "-")
    extra = f"  watches: {', '.join(event.watches)}" if event.watches else ""
    notes = f"  notes: {event.note_count}" if event.note_count else ""
    # In the guild's zone, with its offset (Z when that is UTC): unambiguous either way.
    when = _iso(event.occurred_at.astimezone(zone))
    print(safe(f"#{event.id:<6} {when}  {event.title}  [{sources}]{extra}{notes}"))
    if event.link:
        print(safe(f"        {event.link}"))


# --- registration ------------------------------------------------------------------------------


def _add_parser(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """Add a command, or hand back a throwaway parser when another module already has it."""
    if name in sub.choices:
        log.debug("command %r is registered by another module; keeping that one", name)
        return argparse.ArgumentParser(prog=name, parents=kwargs.get("parents", []))
    parser: argparse.ArgumentParser = sub.add_parser(name, **kwargs)
    return parser


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add timeline, watch, feed, alias, event, add-event, export, status and config export."""
    scoped = argparse.ArgumentParser(add_help=False)
    scoped.add_argument(
        "--guild",
        type=int,
        default=GLOBAL_SCOPE,
        metavar="ID",
        help="act as this Discord guild (default 0: the config-file scope)",
    )
    # Read-only commands take no --actor: nothing they do is logged as someone's change.
    scoped.set_defaults(actor=None)
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--actor", default=None, help="who is making the change (for the log)")
    read, write = [scoped], [scoped, acting]

    _register_timeline(sub, read, write)
    _register_watch(sub, read, write)
    _register_feed(sub, read, write)
    _register_alias(sub, read, write)
    _register_event(sub, read, write)
    p = _add_parser(sub, "status", parents=read, help="feeds, polling and alert health")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run(cmd_status))
    _register_config_export(sub, read)


def _register_timeline(
    sub: Any, read: list[argparse.ArgumentParser], write: list[argparse.ArgumentParser]
) -> None:
    p = _add_parser(sub, "timeline", parents=read, help="the stored timeline, newest first")
    p.add_argument("--since", help="oldest event time: 2025-07-09, 7d, 24h, yesterday ...")
    p.add_argument("--until", help="newest event time (a date includes that whole day)")
    p.add_argument("--limit", type=int, default=20, help="events to show (default 20)")
    p.add_argument("--offset", type=int, default=0, help="skip the first N events")
    p.add_argument("--query", help="only events whose sources match this query")
    p.add_argument("--watch", help="only events that alerted this watch")
    p.add_argument("--source", help="only events with a source from this feed name or domain")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object per event per line")
    fmt.add_argument("--format", choices=["text", "md"], default="text", help="text or Markdown")
    p.set_defaults(func=_run(cmd_timeline))

    p = _add_parser(sub, "add-event", parents=write, help="record an event no feed carried")
    p.add_argument("when", help="when it happened: 2025-07-09, 2025-07-09T14:00Z, yesterday ...")
    p.add_argument("title", help="what happened")
    p.add_argument("--url", help="a link about it")
    p.set_defaults(func=_run(cmd_add_event))

    p = _add_parser(sub, "export", parents=read, help="export the timeline as a file")
    p.add_argument("--format", choices=FORMATS, required=True, help="file format")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.add_argument("--query", help="only events matching this query")
    p.add_argument("--since", help="oldest event time")
    p.add_argument("--until", help="newest event time")
    p.set_defaults(func=_run(cmd_export))


def _register_watch(
    sub: Any, read: list[argparse.ArgumentParser], write: list[argparse.ArgumentParser]
) -> None:
    watch = sub.add_parser("watch", help="manage watches (saved queries that alert a channel)")
    w = watch.add_subparsers(dest="watch_command", metavar="ACTION", required=True)
    p = w.add_parser("add", parents=write, help="add a watch")
    p.add_argument("name", help="the watch's name (unique in the guild)")
    p.add_argument("query", help='query, e.g. "NATO communique" or dual-use')
    p.add_argument("--channel", type=int, required=True, help="Discord channel id to alert")
    p.add_argument("--role", type=int, help="Discord role id to mention")
    p.set_defaults(func=_run(cmd_watch_add))
    p = w.add_parser("edit", parents=write, help="change a watch's query, channel or role")
    p.add_argument("name", help="the watch to change")
    p.add_argument("--query", help="its new query")
    p.add_argument("--channel", type=int, help="the Discord channel id it alerts")
    p.add_argument("--role", type=int, help="the Discord role id it mentions")
    p.add_argument("--clear-role", action="store_true", help="mention no role")
    p.set_defaults(func=_run(cmd_watch_edit))
    for action, help_text in (
        ("remove", "delete a watch"),
        ("pause", "stop a watch alerting"),
        ("resume", "let a paused watch alert again"),
    ):
        p = w.add_parser(action, parents=write, help=help_text)
        p.add_argument("name", help="the watch's name")
        p.set_defaults(func=_run(cmd_watch_simple), action=action)
    p = w.add_parser("list", parents=read, help="list watches")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run(cmd_watch_list))
    p = w.add_parser("test", parents=read, help="what a query would have matched, unsaved")
    p.add_argument("query", help="the query to try")
    p.add_argument("--days", type=int, default=7, help="look back this many days (default 7)")
    p.set_defaults(func=_run(cmd_watch_test))
    p = w.add_parser("template", parents=write, help="shape a watch's alert messages")
    p.add_argument("name", help="the watch")
    p.add_argument(
        "--template",
        help="the alert text: Markdown with {title} {link} {source} {sources} {published} "
        "{published_relative} {snippet} {terms} {watch} {storyline} {role} {event_id}",
    )
    p.add_argument("--colour", help='the embed colour, e.g. "#1f8b4c"')
    p.add_argument("--clear", action="store_true", help="back to the default message")
    p.set_defaults(func=_run(cmd_watch_template))
    p = w.add_parser(
        "delivery", parents=write, help="post a watch's alerts as the bot or a webhook"
    )
    p.add_argument("name", help="the watch")
    p.add_argument(
        "mode",
        choices=["channel", "webhook", "thread", "forum"],
        help="channel: as the bot; webhook: through the channel's webhook (Manage Webhooks); "
        "thread: as the bot with a thread per event, later sources as replies; "
        "forum (a forum channel): a post per event",
    )
    p.add_argument("--webhook-name", help="the author name the webhook messages show")
    p.add_argument("--avatar-url", help="the author avatar (an http or https URL)")
    p.set_defaults(func=_run(cmd_watch_delivery))
    p = w.add_parser(
        "preview", parents=read, help="a watch's alert for its latest event, as it would be posted"
    )
    p.add_argument("name", help="the watch")
    p.add_argument("--template", help="try this template instead of the saved one (unsaved)")
    p.add_argument("--colour", help="try this colour (unsaved)")
    p.set_defaults(func=_run(cmd_watch_preview))


def _register_feed(
    sub: Any, read: list[argparse.ArgumentParser], write: list[argparse.ArgumentParser]
) -> None:
    feed = sub.add_parser("feed", help="manage feeds")
    f = feed.add_subparsers(dest="feed_command", metavar="ACTION", required=True)
    p = f.add_parser("add", parents=write, help="fetch a feed once to check it, then follow it")
    p.add_argument("url", help="the feed's http(s) URL")
    p.add_argument("--name", help="display name (default: the feed's title)")
    p.add_argument("--interval", type=int, help="seconds between polls (default: config)")
    p.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    p.set_defaults(func=_run(cmd_feed_add))
    p = f.add_parser("remove", parents=write, help="stop following a feed")
    p.add_argument("name", help="feed name or URL")
    p.set_defaults(func=_run(cmd_feed_remove))
    p = f.add_parser(
        "purge",
        parents=write,
        help="delete a feed and its stored history for good (a retired or guild feed)",
    )
    p.add_argument("name", help="feed name or URL")
    p.add_argument(
        "--yes", action="store_true", help="really delete: without it, only say what would go"
    )
    p.set_defaults(func=_run(cmd_feed_purge))
    p = f.add_parser("list", parents=read, help="list feeds")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run(cmd_feed_list))
    p = f.add_parser("status", parents=read, help="polling health of one or every feed")
    p.add_argument("name", nargs="?", help="feed name or URL (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run(cmd_feed_status))
    p = f.add_parser("import", parents=write, help="follow the feeds of an OPML file")
    p.add_argument("file", help="the OPML file to read")
    p.set_defaults(func=_run(cmd_feed_import))
    p = f.add_parser("export", parents=read, help="write the feeds as OPML")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.set_defaults(func=_run(cmd_feed_export))


def _register_alias(
    sub: Any, read: list[argparse.ArgumentParser], write: list[argparse.ArgumentParser]
) -> None:
    alias = sub.add_parser("alias", help="manage query aliases (@name)")
    a = alias.add_subparsers(dest="alias_command", metavar="ACTION", required=True)
    p = a.add_parser("set", parents=write, help="create or change an alias")
    p.add_argument("name", help="the alias, used as @name in queries")
    p.add_argument("query", help="the query it stands for")
    p.set_defaults(func=_run(cmd_alias_set))
    p = a.add_parser("remove", parents=write, help="delete an alias")
    p.add_argument("name", help="the alias to delete")
    p.set_defaults(func=_run(cmd_alias_remove))
    p = a.add_parser("list", parents=read, help="list aliases")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run(cmd_alias_list))


def _register_event(
    sub: Any, read: list[argparse.ArgumentParser], write: list[argparse.ArgumentParser]
) -> None:
    event = sub.add_parser("event", help="show, annotate, merge or split events")
    e = event.add_subparsers(dest="event_command", metavar="ACTION", required=True)
    p = e.add_parser("show", parents=read, help="an event with all its sources and notes")
    p.add_argument("id", type=int, help="the event id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run(cmd_event_show))
    p = e.add_parser("note", parents=write, help="add a note to an event")
    p.add_argument("id", type=int, help="the event id")
    p.add_argument("text", help="the note")
    p.set_defaults(func=_run(cmd_event_note))
    p = e.add_parser("merge", parents=write, help="merge OTHER into KEEP")
    p.add_argument("keep", type=int, help="the event that stays")
    p.add_argument("other", type=int, help="the event merged into it")
    p.set_defaults(func=_run(cmd_event_merge))
    p = e.add_parser("split", parents=write, help="move one source out into a new event")
    p.add_argument("id", type=int, help="the event")
    p.add_argument("entry", type=int, help="the source's entry id (see event show)")
    p.set_defaults(func=_run(cmd_event_split))


def _register_config_export(sub: Any, read: list[argparse.ArgumentParser]) -> None:
    config = sub.choices.get("config")
    if config is None:
        config = sub.add_parser("config", help="check or export the configuration")
        config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    actions = [a for a in config._actions if isinstance(a, argparse._SubParsersAction)]
    p = actions[0].add_parser(
        "export", parents=read, help="feeds, watches and aliases as TOML the loader accepts"
    )
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.set_defaults(func=_run(cmd_config_export))
    p = actions[0].add_parser(
        "init", help="write the example config (every setting, commented) to start from"
    )
    p.add_argument(
        "path", nargs="?", help="file to write (default: the --config path or ./config.toml)"
    )
    p.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    p.set_defaults(func=cmd_config_init)


def example_config() -> str:
    """The shipped config.example.toml: in the `timeline.cli` package of a wheel, or at the top of a
    source checkout (an editable install)."""
    try:
        return resources.files("timeline.cli").joinpath("config.example.toml").read_text("utf-8")
    except (FileNotFoundError, OSError):
        return (Path(__file__).resolve().parents[2] / "config.example.toml").read_text("utf-8")


def cmd_config_init(args: argparse.Namespace) -> int:
    """Write config.example.toml where the operator asked; never over a file unasked."""
    path = Path(args.path or common.config_path(args))
    if path.exists() and not args.force:
        common.print_err(f"error: {path} exists; pass --force to overwrite it")
        return 1
    try:
        text = example_config()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        common.print_err(f"error: cannot write {path}: {exc.strerror or exc}")
        return 1
    print(
        f"wrote {path}: set the feeds, watches and channel ids, put the bot token in "
        f"$DISCORD_TOKEN, then run `timeline-bot --config {path} config check`"
    )
    return 0


# --- commands ----------------------------------------------------------------------------------


def _who(args: argparse.Namespace) -> str:
    return str(args.actor or _actor())


async def cmd_timeline(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    """Print the timeline, newest first, grouped by day in the guild's time zone."""
    now = datetime.now(UTC)
    zone = await _zone(session, args, settings)
    page = await list_timeline(
        session,
        args.guild,
        query=args.query,
        since=_when(args.since, now, zone=zone),
        until=_when(args.until, now, end=True, zone=zone),
        watch=args.watch,
        source=args.source,
        limit=args.limit,
        offset=args.offset,
    )
    if args.json:
        for event in page.events:
            _json_line(event_json(event, zone))
    elif args.format == "md":
        sys.stdout.write(render_markdown(page.events, zone))
    else:
        day = None
        for event in page.events:
            local = event.occurred_at.astimezone(zone).date()
            if local != day:
                day = local
                print(_day_heading(day, zone))
            _print_event(event, zone)
        shown = f"{page.offset + 1}-{page.offset + len(page.events)}" if page.events else "0"
        print(f"({shown} of {page.total} events)", file=sys.stderr)
    return common.EX_OK


async def cmd_add_event(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    """Record a manual event (a time without an offset is the guild's local time)."""
    when = parse_when(args.when, datetime.now(UTC), zone=await _zone(session, args, settings))
    view = await event_svc.add_manual_event(
        session, args.guild, when, args.title, args.url, _who(args)
    )
    print(f"added event #{view.id}")
    return common.EX_OK


async def cmd_export(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    """Export the timeline in a file format."""
    now = datetime.now(UTC)
    zone = await _zone(session, args, settings)
    _, data = await export_events(
        session,
        args.guild,
        args.format,
        query=args.query,
        since=_when(args.since, now, zone=zone),
        until=_when(args.until, now, end=True, zone=zone),
        now=now,
        zone=zone,
    )
    _write(data, args.output)
    return common.EX_OK


async def cmd_watch_add(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    """Add a watch."""
    view = await watch_svc.add_watch(
        session,
        args.guild,
        args.name,
        args.query,
        args.channel,
        _who(args),
        role_id=args.role,
        origin="cli",
    )
    print(safe(f"added watch {view.name!r}: {view.query}"))
    return common.EX_OK


async def cmd_watch_edit(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Edit a watch."""
    view = await watch_svc.edit_watch(
        session,
        args.guild,
        args.name,
        _who(args),
        query=args.query,
        channel_id=args.channel,
        role_id=args.role,
        clear_role=args.clear_role,
    )
    print(safe(f"watch {view.name!r}: {view.query} -> channel {view.channel_id}"))
    return common.EX_OK


async def cmd_watch_simple(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Remove, pause or resume a watch."""
    actions = {
        "remove": watch_svc.remove_watch,
        "pause": watch_svc.pause_watch,
        "resume": watch_svc.resume_watch,
    }
    view = await actions[args.action](session, args.guild, args.name, _who(args))
    done = {"remove": "removed", "pause": "paused", "resume": "resumed"}[args.action]
    print(safe(f"{done} watch {view.name!r}"))
    return common.EX_OK


async def cmd_watch_list(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """List watches."""
    watches = await watch_svc.list_watches(session, args.guild)
    if not watches and not args.json:
        print("no watches: add one to the config file or with `timeline-bot watch add`")
    for w in watches:
        if args.json:
            _json_line(
                {
                    "name": w.name,
                    "query": w.query,
                    "channel_id": w.channel_id,
                    "role_id": w.role_id,
                    "enabled": w.enabled,
                    "origin": w.origin,
                    "guild_id": w.guild_id,
                    "retired_at": common.iso(w.retired_at),
                }
            )
        else:
            state = "" if w.enabled else "  (paused)"
            if w.retired_at is not None:
                state = f"  (retired {_iso(w.retired_at)})"
            print(safe(f"{w.name}: {w.query}  -> #{w.channel_id}  [{w.origin}]{state}"))
    return common.EX_OK


async def cmd_watch_test(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Show what a query would have matched in the last days."""
    result = await watch_svc.test_watch(
        session, args.guild, args.query, args.days, datetime.now(UTC)
    )
    more = "+" if result.capped else ""
    print(f"{result.count}{more} stored entries in the last {args.days} days match")
    for hit in result.first:
        print(safe(f"  {_iso(hit.published_at)}  {hit.feed_name}: {hit.title}"))
    return common.EX_OK


async def cmd_watch_template(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Save a watch's message template and colour."""
    view = await watch_svc.set_template(
        session,
        args.guild,
        args.name,
        _who(args),
        template=args.template,
        colour=args.colour,
        clear=args.clear,
    )
    what = "the default message" if args.clear else "its template"
    print(safe(f"watch {view.name!r} now alerts with {what}"))
    return common.EX_OK


async def cmd_watch_delivery(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Choose how a watch's alerts are posted."""
    view = await watch_svc.set_delivery(
        session,
        args.guild,
        args.name,
        _who(args),
        mode=args.mode,
        webhook_name=args.webhook_name,
        avatar_url=args.avatar_url,
    )
    how = {
        "webhook": "through the channel's webhook",
        "thread": "as the bot with a thread per event",
        "forum": "a forum post per event",
    }.get(view.delivery, "as the bot")
    print(safe(f"watch {view.name!r} now posts {how}"))
    return common.EX_OK


async def cmd_watch_preview(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Print the watch's alert for its latest event as Discord would get it (unsaved)."""
    from discordbot.render import alert_embed  # noqa: PLC0415 (discord.py costs 1 s: only for a preview)

    view = await watch_svc.preview_alert(
        session, args.guild, args.name, template=args.template, colour=args.colour
    )
    data = alert_embed(view, settings.alerts.snippet_chars).to_dict()
    lines = []
    if "author" in data:
        lines.append(f"[{data['author']['name']}]")
    lines += [f"# {data.get('title', '')}", data.get("description", "")]
    lines += [f"{f['name']}: {f['value']}" for f in data.get("fields", [])]
    lines.append(f"-- {data.get('footer', {}).get('text', '')}")
    for line in "\n".join(line for line in lines if line).splitlines():
        print(safe(line))
    return common.EX_OK


async def probe_feed(url: str, settings: Settings) -> feed_svc.FeedProbe:
    """Fetch `url` once with the configured limits (the use case's probe, as in chat)."""
    from feeds.fetch import Fetcher, FetchSettings  # noqa: PLC0415 (aiohttp: only when probing)

    async with Fetcher(FetchSettings.from_settings(settings.polling)) as fetcher:
        return await feed_svc.probe_feed(fetcher, url)


async def cmd_feed_add(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    """Fetch a feed once, then follow it."""
    url = args.url.strip()
    feed_svc.check_url(url, "feed URL")
    probe = await probe_feed(url, settings)
    bounds = (settings.polling.min_interval_seconds, settings.polling.max_interval_seconds)
    view = await feed_svc.add_feed(
        session,
        args.guild,
        probe.final_url or url,
        args.name,
        args.interval,
        _who(args),
        probe,
        tags=args.tag,
        origin="cli",
        interval_bounds=bounds,
    )
    again = " again, with its stored stories" if view.revived else ""
    print(
        safe(
            f"added feed {view.name!r}{again} ({probe.title or 'untitled'}, "
            f"{probe.entry_count} entries)"
        )
    )
    return common.EX_OK


async def cmd_feed_remove(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Stop following a feed."""
    view = await feed_svc.remove_feed(session, args.guild, args.name, _who(args))
    print(
        safe(
            f"stopped following feed {view.name!r} (retired: its stories stay on the timeline; "
            "`feed purge` deletes them)"
        )
    )
    return common.EX_OK


async def cmd_feed_purge(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Delete a feed and its history, only with --yes."""
    view = await feed_svc.purge_feed(
        session,
        args.guild,
        args.name,
        _who(args),
        config_urls={f.url for f in settings.feeds},
        dry_run=not args.yes,
    )
    what = f"{view.entries} stored entries and {view.events} events only it carried"
    if not view.done:
        common.print_err(
            safe(
                f"refusing to purge feed {view.name!r} without --yes: this deletes its {what}, "
                "for good (run again with --yes)"
            )
        )
        return common.EX_USAGE
    print(safe(f"purged feed {view.name!r}: deleted {what}"))
    return common.EX_OK


async def cmd_feed_list(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    """List feeds."""
    for f in await feed_svc.list_feeds(session, args.guild):
        if args.json:
            _json_line(
                {
                    "name": f.name,
                    "url": f.url,
                    "interval_seconds": f.interval_seconds,
                    "tags": f.tags,
                    "origin": f.origin,
                    "status": f.status,
                    "guild_id": f.guild_id,
                    "retired_at": common.iso(f.retired_at),
                }
            )
        else:
            state = f"retired {_iso(f.retired_at)}" if f.retired_at else f.status
            print(safe(f"{f.name}: {f.url}  [{f.origin}, {state}]"))
    return common.EX_OK


async def cmd_feed_status(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Print feeds' polling health."""
    if args.name:
        statuses = [await feed_svc.feed_status(session, args.guild, args.name)]
    else:
        statuses = await feed_svc.feed_statuses(session, args.guild)
    for st in statuses:
        if args.json:
            _json_line(
                {
                    "name": st.name,
                    "url": st.url,
                    "status": st.status,
                    "last_success_at": common.iso(st.last_success_at),
                    "last_checked_at": common.iso(st.last_checked_at),
                    "next_check_at": common.iso(st.next_check_at),
                    "error_count": st.error_count,
                    "last_error": st.last_error,
                    "entries": st.entry_count,
                    "retired_at": common.iso(st.retired_at),
                }
            )
        else:
            print(
                safe(
                    f"{st.name}: {'retired, ' if st.retired_at else ''}"
                    f"{st.status}, {st.entry_count} entries, last ok "
                    f"{_iso(st.last_success_at)}, next {_iso(st.next_check_at)}, "
                    f"errors {st.error_count}" + (f" ({st.last_error})" if st.last_error else "")
                )
            )
    return common.EX_OK


async def cmd_feed_import(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Follow every feed of an OPML file."""
    report = await import_opml(session, args.guild, _read_file(args.file), _who(args), origin="cli")
    print(f"added {len(report.added)}, skipped {len(report.skipped)}, refused {len(report.errors)}")
    for line in report.skipped:
        print(safe(f"  skipped {line}"))
    for line in report.errors:
        print(safe(f"  refused {line}"))
    return common.EX_OK


async def cmd_feed_export(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Write the feeds as OPML."""
    _write(await export_opml(session, args.guild), args.output)
    return common.EX_OK


async def cmd_alias_set(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    """Create or change an alias."""
    view = await alias_svc.set_alias(
        session, args.guild, args.name, args.query, _who(args), origin="cli"
    )
    print(safe(f"@{view.name} = {view.query}"))
    return common.EX_OK


async def cmd_alias_remove(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Delete an alias."""
    view = await alias_svc.remove_alias(session, args.guild, args.name, _who(args))
    print(safe(f"removed @{view.name}"))
    return common.EX_OK


async def cmd_alias_list(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """List aliases."""
    for a in await alias_svc.list_aliases(session, args.guild):
        if args.json:
            _json_line(
                {"name": a.name, "query": a.query, "origin": a.origin, "guild_id": a.guild_id}
            )
        else:
            print(safe(f"@{a.name} = {a.query}  [{a.origin}]"))
    return common.EX_OK


async def cmd_event_show(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Show one event in full."""
    detail = await event_svc.show_event(session, args.guild, args.id)
    if args.json:
        doc = event_json(detail.event)
        doc["notes"] = [
            {"author": n.author, "text": n.text, "created_at": common.iso(n.created_at)}
            for n in detail.notes
        ]
        doc["dates"] = [
            {"start": str(d.start), "end": str(d.end), "precision": d.precision, "phrase": d.phrase}
            for d in detail.dates
        ]
        _json_line(doc)
        return common.EX_OK
    _print_event(detail.event)
    for s in detail.event.sources:
        print(safe(f"  source {s.entry_id}: {_iso(s.published_at)}  {s.feed_name}: {s.title}"))
        if s.link:
            print(safe(f"      {s.link}"))
    for d in detail.dates:
        span = str(d.start) if d.start == d.end else f"{d.start}..{d.end}"
        print(safe(f"  mentions {span} ({d.precision}): {d.phrase}"))
    for n in detail.notes:
        print(safe(f"  note by {n.author} at {_iso(n.created_at)}: {n.text}"))
    return common.EX_OK


async def cmd_event_note(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Add a note to an event."""
    await event_svc.add_note(session, args.guild, args.id, args.text, _who(args))
    print(f"noted event #{args.id}")
    return common.EX_OK


async def cmd_event_merge(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Merge one event into another."""
    view = await event_svc.merge_events(session, args.guild, args.keep, args.other, _who(args))
    print(f"merged #{args.other} into #{view.id}: {len(view.sources)} sources")
    return common.EX_OK


async def cmd_event_split(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Split one source out of an event."""
    new_id = await event_svc.split_event(session, args.guild, args.id, args.entry, _who(args))
    print(f"source {args.entry} is now event #{new_id}")
    return common.EX_OK


async def cmd_status(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> int:
    """Print feed, polling and alert health."""

    try:
        ver = version("timeline-bot")
    except PackageNotFoundError:
        ver = "unknown"
    view = await status_svc(session, args.guild, ver)
    if args.json:
        _json_line(
            {
                "version": view.version,
                "feeds_total": view.feeds_total,
                "feeds_ok": view.feeds_ok,
                "feeds_failing": [
                    {
                        "name": f.name,
                        "last_error": f.last_error,
                        "last_success_at": common.iso(f.last_success_at),
                    }
                    for f in view.feeds_failing
                ],
                "last_poll_at": common.iso(view.last_poll_at),
                "next_poll_at": common.iso(view.next_poll_at),
                "alerts_pending": view.alerts_pending,
                "alerts_failed": [
                    {"watch": a.watch, "reason": a.reason} for a in view.alerts_failed
                ],
                "feeds_retired": list(view.feeds_retired),
                "watches_retired": list(view.watches_retired),
            }
        )
        return common.EX_OK
    print(f"timeline-bot {view.version}")
    print(f"feeds: {view.feeds_total} total, {view.feeds_ok} ok, {len(view.feeds_failing)} failing")
    for f in view.feeds_failing:
        print(safe(f"  failing {f.name}: {f.last_error} (last ok {_iso(f.last_success_at)})"))
    if view.feeds_retired or view.watches_retired:
        print(
            f"retired (left the config file, history kept): {len(view.feeds_retired)} feeds, "
            f"{len(view.watches_retired)} watches"
        )
        for name in view.feeds_retired:
            print(safe(f"  retired feed {name}"))
        for name in view.watches_retired:
            print(safe(f"  retired watch {name}"))
    print(f"last poll: {_iso(view.last_poll_at)}  next poll: {_iso(view.next_poll_at)}")
    print(f"alerts: {view.alerts_pending} pending, {view.alerts_failed_total} failed")
    for a in view.alerts_failed:
        print(safe(f"  failed {a.watch}: {a.reason}"))
    return common.EX_OK


async def cmd_config_export(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> int:
    """Write the feeds, watches and aliases as TOML."""
    _write((await export_config_toml(session, args.guild)).encode("utf-8"), args.output)
    return common.EX_OK
