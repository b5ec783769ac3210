"""OPML import and export: the format every feed reader speaks.

Uploaded OPML is hostile until proven otherwise: it is parsed with expat directly, and any
DOCTYPE, entity declaration or external reference is refused before it can expand (the
"billion laughs" and XXE attacks; the same rules as defusedxml).
"""

from __future__ import annotations

import logging
import xml.parsers.expat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.errors import BadQuery, Conflict
from timeline.usecases._common import sanitise_name
from timeline.usecases.feeds import add_feed, list_feeds, unique_feed_name

log = logging.getLogger(__name__)

MAX_OPML_BYTES = 2 * 1024 * 1024
MAX_OUTLINES = 2000
MAX_DEPTH = 50


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One feed outline: its URL, its display name and the folders it sits in."""

    url: str
    name: str
    tags: tuple[str, ...]


@dataclass(slots=True)
class ImportReport:
    """What an OPML import did: feeds added, skipped (already followed) and refused."""

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Refused(Exception):
    pass


class _OpmlReader:
    """expat handlers collecting the feed outlines (an outline's folders become its tags)."""

    def __init__(self) -> None:
        self.feeds: list[OpmlFeed] = []
        self.folders: list[str | None] = []
        self.root: str | None = None
        self.outlines = 0

    @staticmethod
    def refuse(*_args: Any) -> None:
        raise _Refused("DOCTYPE and entity declarations are not allowed in OPML")

    @staticmethod
    def refuse_external(*_args: Any) -> int:
        raise _Refused("external references are not allowed in OPML")

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if self.root is None:
            self.root = tag
            if tag.lower() != "opml":
                raise _Refused(f"not an OPML document (root element <{tag}>)")
        if len(self.folders) > MAX_DEPTH:
            raise _Refused(f"outlines nested deeper than {MAX_DEPTH} levels")
        if tag != "outline":
            self.folders.append(None)
            return
        self.outlines += 1
        if self.outlines > MAX_OUTLINES:
            raise _Refused(f"more than {MAX_OUTLINES} outlines")
        url = (attrs.get("xmlUrl") or attrs.get("xmlurl") or "").strip()
        label = (attrs.get("title") or attrs.get("text") or "").strip()
        if not url:
            self.folders.append(label or None)
            return
        tags = [f for f in self.folders if f]
        tags += [c.strip() for c in attrs.get("category", "").split(",") if c.strip()]
        self.feeds.append(OpmlFeed(url, label, tuple(dict.fromkeys(t.strip("/") for t in tags))))
        self.folders.append(None)

    def end(self, _tag: str) -> None:
        if self.folders:
            self.folders.pop()


def parse_opml(data: bytes) -> list[OpmlFeed]:
    """Return the feed outlines of an OPML document; raise BadQuery for unsafe or broken XML."""
    if len(data) > MAX_OPML_BYTES:
        raise BadQuery(f"OPML file too large ({len(data)} bytes, at most {MAX_OPML_BYTES})")
    parser = xml.parsers.expat.ParserCreate()
    reader = _OpmlReader()
    parser.StartDoctypeDeclHandler = reader.refuse
    parser.EntityDeclHandler = reader.refuse
    parser.UnparsedEntityDeclHandler = reader.refuse
    parser.ExternalEntityRefHandler = reader.refuse_external
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise BadQuery(f"OPML refused: {exc}") from None
    except xml.parsers.expat.ExpatError as exc:
        raise BadQuery(
            f"OPML is not well-formed XML: {xml.parsers.expat.ErrorString(exc.code)} "
            f"at line {exc.lineno}",
            exc.offset + 1,
        ) from None
    return reader.feeds


async def import_opml(
    session: AsyncSession,
    guild_id: int,
    data: bytes,
    actor: str,
    *,
    origin: str = "discord",
) -> ImportReport:
    """Add every feed of an OPML file the guild does not follow yet (no fetch: the poller will)."""
    report = ImportReport()
    outlines = parse_opml(data)
    known = {f.url for f in await list_feeds(session, guild_id)}
    for item in outlines:
        label = item.name or item.url
        if item.url in known:
            report.skipped.append(f"{label}: already followed")
            continue
        try:
            name = (
                await unique_feed_name(session, guild_id, sanitise_name(item.name))
                if item.name
                else None
            )
            view = await add_feed(
                session,
                guild_id,
                item.url,
                name,
                None,
                actor,
                None,
                tags=list(item.tags),
                origin=origin,
            )
        except Conflict as exc:
            report.skipped.append(f"{label}: {exc}")
            continue
        except BadQuery as exc:
            report.errors.append(f"{label[:200]}: {exc}")
            continue
        known.add(view.url)
        report.added.append(view.name)
    log.info(
        "OPML import by %s: %d added, %d skipped, %d refused",
        actor,
        len(report.added),
        len(report.skipped),
        len(report.errors),
        extra={"guild_id": guild_id, "actor": actor},
    )
    return report


async def export_opml(
    session: AsyncSession, guild_id: int, *, now: datetime | None = None
) -> bytes:
    """Return the guild's feeds as an OPML 2.0 document."""
    now = now or datetime.now(UTC)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        "  <head>",
        "    <title>Timeline Bot feeds</title>",
        f"    <dateCreated>{format_datetime(now, usegmt=True)}</dateCreated>",
        "  </head>",
        "  <body>",
    ]
    for feed in await list_feeds(session, guild_id):
        attrs = {
            "type": "rss",
            "text": feed.name,
            "title": feed.title or feed.name,
            "xmlUrl": feed.url,
        }
        if feed.tags:
            attrs["category"] = ",".join(t.replace(",", " ") for t in feed.tags)
        rendered = " ".join(f"{key}={quoteattr(_xml_text(value))}" for key, value in attrs.items())
        lines.append(f"    <outline {rendered}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")


def _xml_text(value: str) -> str:
    # XML 1.0 cannot carry most control characters at all, even escaped.
    return "".join(
        ch for ch in value if (ch in "\t\n" or ord(ch) >= 0x20) and ch not in "\ufffe\uffff"
    )
