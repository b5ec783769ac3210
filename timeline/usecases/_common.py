"""Private helpers shared by the services: scope, validation, event bookkeeping."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.app.config import NAME_RE
from timeline.domain.errors import BadQuery, NotFound
from timeline.storage.models import GLOBAL_SCOPE, Alias, Entry, Event

MAX_URL = 2048
MAX_TITLE = 500
MAX_NOTE = 2000
MAX_QUERY = 1000
ALIAS_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]{1,50}$")
ORIGINS = ("config", "discord", "cli")


def scope(guild_id: int) -> tuple[int, ...]:
    """Return the guild ids whose rows `guild_id` may see: its own and the config file's."""
    if guild_id == GLOBAL_SCOPE:
        return (GLOBAL_SCOPE,)
    return (guild_id, GLOBAL_SCOPE)


def check_origin(origin: str) -> str:
    """Refuse an origin the schema does not know."""
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
    return origin


def clean_text(text: str, what: str, limit: int, *, multiline: bool = False) -> str:
    """Strip `text`, refuse empty or overlong values, drop control characters."""
    if not isinstance(text, str):
        raise BadQuery(f"{what} must be text")
    kept = []
    for ch in text:
        if multiline and ch == "\n":
            kept.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            kept.append(" " if ch in "\t\r\n" else "")
        else:
            kept.append(ch)
    value = "".join(kept).strip()
    if not value:
        raise BadQuery(f"{what} must not be empty")
    if len(value) > limit:
        raise BadQuery(f"{what} is too long ({len(value)} characters, at most {limit})")
    return value


def check_name(name: str, what: str) -> str:
    """Validate a feed or watch name the config loader would accept too."""
    value = clean_text(name, f"{what} name", 100)
    if not NAME_RE.match(value):
        raise BadQuery(
            f"{what} name {value!r} must be 1-100 letters, digits, spaces, '.', '-' or '_'"
        )
    return value


def sanitise_name(text: str) -> str:
    """Turn a feed title into a valid name (letters, digits, spaces, '.', '-', '_')."""
    value = re.sub(r"[^\w .\-]+", " ", text)
    value = re.sub(r"\s+", " ", value).strip(" .-")[:100].strip()
    return value or "feed"


def check_url(url: str, what: str = "URL") -> str:
    """Validate an http(s) URL with a host; return it stripped."""
    value = (url or "").strip()
    if not value:
        raise BadQuery(f"{what} must not be empty")
    if len(value) > MAX_URL:
        raise BadQuery(f"{what} is too long ({len(value)} characters, at most {MAX_URL})")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        raise BadQuery(f"{what} must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as exc:
        raise BadQuery(f"{what} {value!r} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise BadQuery(f"{what} must be an http:// or https:// URL, got {value!r}")
    return value


def url_host(url: str | None) -> str:
    """Return the lower-case host of `url`, or '' when there is none."""
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


async def get_event(session: AsyncSession, guild_id: int, event_id: int) -> Event:
    """Load an event visible to `guild_id` or raise NotFound."""
    event = await session.scalar(
        select(Event).where(Event.id == event_id, Event.guild_id.in_(scope(guild_id)))
    )
    if event is None:
        raise NotFound(f"no event #{event_id} on this server's timeline")
    return event


async def refresh_occurred_at(session: AsyncSession, event: Event) -> None:
    """Set the event's time to the earliest published time among its sources, if it has any."""
    earliest = await session.scalar(
        select(Entry.published_at)
        .where(Entry.event_id == event.id)
        .order_by(Entry.published_at, Entry.id)
        .limit(1)
    )
    if earliest is not None:
        event.occurred_at = earliest


async def aliases_for(session: AsyncSession, guild_id: int) -> dict[str, str]:
    """Return the aliases `guild_id` sees: the config file's, overridden by its own."""
    rows: Sequence[Alias] = (
        await session.scalars(select(Alias).where(Alias.guild_id.in_(scope(guild_id))))
    ).all()
    merged: dict[str, str] = {}
    for row in sorted(rows, key=lambda a: a.guild_id != GLOBAL_SCOPE):
        merged[row.name] = row.query
    return merged
