"""Export the timeline as CSV, JSON, iCalendar (RFC 5545) or Markdown."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.errors import BadQuery
from timeline.render.markup import escape_markdown
from timeline.usecases.timeline import list_timeline
from timeline.usecases.views import EventView

log = logging.getLogger(__name__)

FORMATS = ("csv", "json", "ics", "md")
MAX_EXPORT = 10_000
PRODID = "-//Timeline Bot//Timeline Export//EN"


async def collect_events(
    session: AsyncSession,
    guild_id: int,
    *,
    query: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    aliases: Mapping[str, str] | None = None,
    limit: int = MAX_EXPORT,
    watch: str | None = None,
    source: str | None = None,
) -> list[EventView]:
    """Return up to `limit` events of the guild's timeline, newest first.

    One call, so a query is searched once (not once per page); its search covers `limit`
    matching entries, enough for `limit` events.
    """
    page = await list_timeline(
        session,
        guild_id,
        query=query,
        since=since,
        until=until,
        watch=watch,
        source=source,
        limit=limit,
        aliases=aliases,
        search_cap=limit,
    )
    return page.events


async def export_events(
    session: AsyncSession,
    guild_id: int,
    fmt: str,
    *,
    query: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
    aliases: Mapping[str, str] | None = None,
    limit: int = MAX_EXPORT,
    watch: str | None = None,
    source: str | None = None,
    zone: tzinfo = UTC,
) -> tuple[str, bytes]:
    """Render the guild's timeline in `fmt` (csv, json, ics, md); return (filename, bytes).

    Times stay UTC (ISO with Z; iCalendar's UTC form); CSV and JSON add each time in `zone`,
    the guild's time zone, and Markdown groups days and writes times in it.
    """
    if fmt not in FORMATS:
        raise BadQuery(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    events = await collect_events(
        session,
        guild_id,
        query=query,
        since=since,
        until=until,
        aliases=aliases,
        limit=limit,
        watch=watch,
        source=source,
    )
    filename = f"timeline-{now:%Y%m%d-%H%M%S}.{fmt}"
    if fmt == "csv":
        data = render_csv(events, zone)
    elif fmt == "json":
        data = render_json(events, now=now, guild_id=guild_id, zone=zone)
    elif fmt == "ics":
        data = render_ics(events, now=now, guild_id=guild_id)
    else:
        data = render_markdown(events, zone).encode("utf-8")
    log.info("exported %d events as %s", len(events), fmt, extra={"guild_id": guild_id})
    return filename, data


def iso(value: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def local_iso(value: datetime, zone: tzinfo) -> str:
    """Format an aware datetime as ISO 8601 in `zone`, with its offset (2025-07-09T16:05:09+02:00)."""
    return value.astimezone(zone).isoformat()


# --- CSV ------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def csv_cell(value: object) -> str:
    """Make a value safe for a spreadsheet: a text starting like a formula gets a leading '.

    OWASP "CSV injection": =, +, -, @, tab and CR at the start make Excel/LibreOffice evaluate
    the cell (`=cmd|' /C calc'!A0`).
    """
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def render_csv(events: list[EventView], zone: tzinfo = UTC) -> bytes:
    """Render events as CSV (RFC 4180, CRLF, UTF-8 with BOM so Excel reads the accents).

    `occurred_at` is UTC; `occurred_local` is the same moment in the guild's zone.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(
        [
            "id",
            "occurred_at",
            "title",
            "link",
            "sources",
            "source_links",
            "watches",
            "notes",
            "occurred_local",
        ]
    )
    for event in events:
        writer.writerow(
            [
                event.id,
                iso(event.occurred_at),
                csv_cell(event.title),
                csv_cell(event.link),
                csv_cell("; ".join(s.feed_name for s in event.sources)),
                csv_cell(" ".join(s.link or "" for s in event.sources).strip()),
                csv_cell("; ".join(event.watches)),
                event.note_count,
                local_iso(event.occurred_at, zone),
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# --- JSON -----------------------------------------------------------------------------------


def event_json(event: EventView, zone: tzinfo | None = None) -> dict[str, Any]:
    """Return an event as a JSON-ready dict (with `occurred_local` in `zone` when given)."""
    doc = {
        "id": event.id,
        "title": event.title,
        "link": event.link,
        "occurred_at": iso(event.occurred_at),
        "manual": event.manual,
        "watches": list(event.watches),
        "note_count": event.note_count,
        "sources": [
            {
                "entry_id": s.entry_id,
                "feed": s.feed_name,
                "title": s.title,
                "link": s.link,
                "published_at": iso(s.published_at),
            }
            for s in event.sources
        ],
    }
    if zone is not None:
        doc["occurred_local"] = local_iso(event.occurred_at, zone)
    return doc


def render_json(
    events: list[EventView], *, now: datetime, guild_id: int, zone: tzinfo = UTC
) -> bytes:
    """Render events as one JSON document."""
    doc = {
        "generated_at": iso(now),
        "guild_id": guild_id,
        "timezone": str(zone),
        "count": len(events),
        "events": [event_json(e, zone) for e in events],
    }
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# --- iCalendar (RFC 5545) --------------------------------------------------------------------


def ics_escape(text: str) -> str:
    """Escape a TEXT value (RFC 5545 3.3.11): backslash, ';', ',' and newlines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch == "\n" or (ord(ch) >= 0x20 and ch != "\x7f"))
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def ics_fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 3.1), never inside a UTF-8 sequence."""
    out: list[str] = []
    current = ""
    size = 0
    limit = 75
    for ch in line:
        width = len(ch.encode("utf-8"))
        if size + width > limit:
            out.append(current)
            current, size = " ", 1  # the continuation line starts with one space
        current += ch
        size += width
    out.append(current)
    return "\r\n".join(out)


def _ics_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _ics_uri(url: str) -> str:
    # A URI value is not TEXT (no backslash escaping), but must hold no spaces or controls.
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~-._")


def render_ics(events: list[EventView], *, now: datetime, guild_id: int) -> bytes:
    """Render events as an iCalendar file with one VEVENT per event."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALNAME:Timeline",
    ]
    stamp = _ics_time(now)
    for event in events:
        description = "\n".join(
            f"{s.feed_name}: {s.title}" + (f" <{s.link}>" if s.link else "") for s in event.sources
        )
        lines += [
            "BEGIN:VEVENT",
            f"UID:event-{event.id}-g{guild_id}@timeline-bot",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{_ics_time(event.occurred_at)}",
            f"SUMMARY:{ics_escape(event.title)}",
        ]
        if description:
            lines.append(f"DESCRIPTION:{ics_escape(description)}")
        if event.link:
            lines.append(f"URL:{_ics_uri(event.link)}")
        if event.watches:
            lines.append("CATEGORIES:" + ",".join(ics_escape(w) for w in event.watches))
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return ("\r\n".join(ics_fold(line) for line in lines) + "\r\n").encode("utf-8")


# --- Markdown ---------------------------------------------------------------------------------


def md_escape(text: str) -> str:
    """Escape Markdown syntax in a feed-supplied text so it shows literally.

    Titles never start a line here (they follow "- 14:05 UTC · "), so only inline syntax
    can apply; the escaper is the one the Discord rendering uses.
    """
    return escape_markdown(" ".join(text.split()), line_start=False)


def md_url(url: str) -> str:
    """Make a URL safe inside a Markdown link target."""
    return quote(url, safe=":/?#@!$&'*+,;=%~-._[]")


def render_markdown(events: list[EventView], zone: tzinfo = UTC) -> str:
    """Render events as Markdown grouped by day in `zone` (the guild's), newest first."""
    lines = ["# Timeline", ""]
    if not events:
        lines.append("_No events._")
    day = None
    for event in events:
        when = event.occurred_at.astimezone(zone)
        if when.date() != day:
            day = when.date()
            lines += ([""] if len(lines) > 2 else []) + [f"## {day.isoformat()}", ""]
        title = md_escape(event.title)
        head = f"[{title}]({md_url(event.link)})" if event.link else title
        extra = []
        if event.watches:
            extra.append("watches: " + ", ".join(md_escape(w) for w in event.watches))
        if event.note_count:
            extra.append(f"{event.note_count} note{'s' if event.note_count != 1 else ''}")
        suffix = f" ({'; '.join(extra)})" if extra else ""
        lines.append(f"- {when:%H:%M} {when:%Z} · **#{event.id}** {head}{suffix}")
        for source in event.sources:
            name = md_escape(source.feed_name)
            stitle = md_escape(source.title)
            target = f"[{stitle}]({md_url(source.link)})" if source.link else stitle
            lines.append(f"  - {name}, {source.published_at.astimezone(zone):%H:%M}: {target}")
    return "\n".join(lines) + "\n"
