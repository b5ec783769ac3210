"""`/search` and `timeline-bot search`: the stored stories matching a query, cursor-paged.

Results are stories (entries), not events: one event with three outlets gives three hits.
Both front ends call `search_stories`; it owns the validation, the guild scope, the aliases,
the paging and the log line.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.errors import BadQuery
from timeline.storage.models import GLOBAL_SCOPE
from timeline.storage.search import search_entries
from timeline.usecases import _query
from timeline.usecases._common import MAX_QUERY, aliases_for, scope
from timeline.usecases.views import HitView, SearchPage

log = logging.getLogger(__name__)

MAX_PAGE = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(published_at: datetime, entry_id: int) -> str:
    """Return the opaque cursor that continues after the story (published_at, entry_id)."""
    at = published_at if published_at.tzinfo else published_at.replace(tzinfo=UTC)
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}:{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Return the (published_at, entry_id) a cursor names; BadQuery for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros, entry_id = (int(part) for part in raw.split(":"))
        if entry_id < 1 or len(cursor) > 64:
            raise ValueError(cursor)
        return _EPOCH + timedelta(microseconds=micros), entry_id
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError):
        raise BadQuery("that page cursor is not valid; run the search again") from None


async def check_search(
    session: AsyncSession,
    guild_id: int | None,
    text: str,
    aliases: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    """Validate a search query without running it; return it stripped, and the aliases.

    Raises BadQuery for an empty or too long query or a syntax error (with its column).
    """
    text = (text or "").strip()
    if not text:
        raise BadQuery("the query is empty")
    if len(text) > MAX_QUERY:
        raise BadQuery(f"the query is longer than {MAX_QUERY} characters")
    if aliases is None:
        aliases = await aliases_for(session, GLOBAL_SCOPE if guild_id is None else guild_id)
    _query.parse(text, aliases)
    return text, dict(aliases)


async def search_stories(
    session: AsyncSession,
    guild_id: int | None,
    text: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 10,
    cursor: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> SearchPage:
    """Return one page of the stories `guild_id` sees that match `text`, newest first.

    `guild_id` None searches every guild's feeds (the operator's CLI). `aliases` default to
    the guild's (its own over the config file's). Raises BadQuery for an empty or too long
    query, a syntax error (with its column), a bad limit or cursor, or since after until.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise BadQuery(f"limit must be 1-{MAX_PAGE}")
    if since is not None and until is not None and since > until:
        raise BadQuery("since must be before until")
    before = decode_cursor(cursor) if cursor else None
    text, known = await check_search(session, guild_id, text, aliases)
    query = _query.parse(text, known)

    found = await search_entries(
        session,
        query,
        guild_ids=None if guild_id is None else list(scope(guild_id)),
        since=since,
        until=until,
        limit=limit + 1,
        before=before,
    )
    page = found[:limit]
    next_cursor = (
        encode_cursor(page[-1].published_at, page[-1].entry_id) if len(found) > limit else None
    )
    log.debug(
        "search %r: %d hits%s",
        text,
        len(page),
        " (more)" if next_cursor else "",
        extra={"guild_id": guild_id},
    )
    hits = [
        HitView(
            entry_id=hit.entry_id,
            event_id=hit.event_id,
            title=hit.title,
            link=hit.link,
            published_at=hit.published_at,
            feed_name=hit.feed_name,
            terms=list(hit.terms),
            summary=hit.summary,
        )
        for hit in page
    ]
    return SearchPage(str(query), hits, next_cursor)
