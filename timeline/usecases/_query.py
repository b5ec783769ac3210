"""The one place the services talk to the query language (`timeline.domain.query`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.query import Document, parse_query
from timeline.storage import search as fts
from timeline.storage.search import MAX_LIMIT, search_entries
from timeline.usecases.views import HitView


def parse(text: str, aliases: Mapping[str, str]) -> Any:
    """Parse `text` with `aliases`; raise BadQuery with the parser's message and column."""

    return parse_query(text, aliases)


def matches(query: Any, *, title: str, summary: str = "", sources: Sequence[str] = ()) -> bool:
    """Tell whether `query` matches a title/summary (used for manual events with no entry)."""

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
    """Search stored entries, newest first (`since` <= published <= `until`), as plain views."""

    # search_entries caps one call at MAX_LIMIT and treats `until` as exclusive. Later batches
    # continue below the oldest hit so far (a cursor, not an offset: offsets rescan from the
    # top); entries sharing that instant are fetched again and dropped by id.
    end = until + timedelta(microseconds=1) if until is not None else None
    hits: list[Any] = []
    seen: set[int] = set()
    skip = offset
    while len(hits) < limit:
        # +1 after the first batch: the previous batch's last hit comes back (same instant).
        want = min(MAX_LIMIT, limit - len(hits) + skip + (1 if seen else 0))
        batch = await search_entries(
            session, query, guild_ids=list(guild_ids), since=since, until=end, limit=want
        )
        fresh = [hit for hit in batch if hit.entry_id not in seen]
        seen.update(hit.entry_id for hit in fresh)
        dropped = min(skip, len(fresh))
        skip -= dropped
        hits.extend(fresh[dropped:])
        if len(batch) < want or not fresh:
            break
        end = batch[-1].published_at + timedelta(microseconds=1)
    hits = hits[:limit]
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


async def few_candidates(
    session: AsyncSession,
    query: Any,
    *,
    guild_ids: Sequence[int],
    since: datetime | None,
    until: datetime | None,
    few: int,
) -> list[tuple[int, int]] | None:
    """(entry_id, event_id) of every entry the index cannot rule out; None if more than `few`."""
    return await fts.few_candidates(
        session, query, guild_ids=guild_ids, since=since, until=until, few=few
    )


async def indexed_candidates(
    session: AsyncSession, query: Any, entry_ids: Sequence[int]
) -> set[int]:
    """Those of `entry_ids` the full-text index cannot rule out."""
    return await fts.indexed_candidates(session, query, entry_ids)


async def matching_entries(session: AsyncSession, query: Any, entry_ids: Sequence[int]) -> set[int]:
    """Those of `entry_ids` the query matches (the matcher's verdict)."""
    return await fts.matching_entries(session, query, entry_ids)


async def required_feed_ids(
    session: AsyncSession, query: Any, guild_ids: Sequence[int]
) -> list[int] | None:
    """The feeds a match must come from (required `source:` terms), or None for any."""
    return await fts.required_feed_ids(session, query, guild_ids)
