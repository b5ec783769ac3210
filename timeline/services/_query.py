"""The one place the services talk to the query language (`timeline.query`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from .views import HitView


def parse(text: str, aliases: Mapping[str, str]) -> Any:
    """Parse `text` with `aliases`; raise BadQuery with the parser's message and column."""
    from ..query import parse_query

    return parse_query(text, aliases)


def matches(query: Any, *, title: str, summary: str = "", sources: Sequence[str] = ()) -> bool:
    """Tell whether `query` matches a title/summary (used for manual events with no entry)."""
    from ..query import Document

    return (
        query.match(Document(title=title, summary=summary, source_names=tuple(sources))) is not None
    )


async def search(
    session: AsyncSession,
    query: Any,
    *,
    guild_ids: Sequence[int],
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int = 0,
) -> list[HitView]:
    """Search stored entries, newest first, as plain views."""
    from ..query import search_entries

    hits = await search_entries(
        session,
        query,
        guild_ids=list(guild_ids),
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return [
        HitView(
            entry_id=hit.entry_id,
            event_id=hit.event_id,
            title=hit.title,
            link=hit.link,
            published_at=hit.published_at,
            feed_name=hit.feed_name,
            terms=list(hit.terms),
        )
        for hit in hits
    ]
