"""The timeline as a guild sees it: events newest first, filtered and paged."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, exists, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.errors import BadQuery, NotFound
from timeline.storage.models import (
    Alert,
    Entry,
    Event,
    EventNote,
    Feed,
    Storyline,
    UTCDateTime,
    Watch,
)
from timeline.usecases import _query
from timeline.usecases._common import aliases_for, scope, url_host
from timeline.usecases.search import decode_cursor, encode_cursor
from timeline.usecases.views import EventView, SourceView, TimelineCursorPage, TimelinePage

log = logging.getLogger(__name__)

MAX_LIMIT = 10_000
# A query is answered from the full-text index entry by entry (newest first); events are then
# paged. The cap bounds one command's time (about 0.3 s per 1,000 hits on the 2-core box); the
# newest events are the ones people page through. TimelinePage.capped says when it was hit.
SEARCH_CAP = 1_000


async def list_timeline(
    session: AsyncSession,
    guild_id: int,
    *,
    query: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    watch: str | None = None,
    source: str | None = None,
    limit: int = 10,
    offset: int = 0,
    aliases: Mapping[str, str] | None = None,
    search_cap: int = SEARCH_CAP,
) -> TimelinePage:
    """Return one page of the guild's timeline, newest first by `occurred_at`.

    With a `query`, only the newest `search_cap` matching entries are considered; the page's
    `capped` flag says when there were more.
    """
    limit = max(1, min(int(limit), MAX_LIMIT))
    offset = max(0, int(offset))
    if since is not None and until is not None and since > until:
        raise BadQuery("`since` is after `until`: swap them")
    conds, capped = await _conditions(
        session,
        guild_id,
        query=query,
        since=since,
        until=until,
        watch=watch,
        source=source,
        aliases=aliases,
        search_cap=search_cap,
    )
    total = await session.scalar(select(func.count(Event.id)).where(*conds)) or 0
    rows = (
        await session.scalars(
            select(Event)
            .where(*conds)
            .order_by(Event.occurred_at.desc(), Event.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    views = await event_views(session, guild_id, rows)
    return TimelinePage(views, total, offset, limit, capped)


MAX_CURSOR_PAGE = 100
# A searched cursor page examines at most this many events (a query the full-text index
# cannot narrow, or a rare match under a narrow filter, stops there): the page is then short,
# says so (`capped`), and its cursor continues after the last event examined.
SCAN_BUDGET = 20_000
# Up to this many full-text candidates, their events are fetched by id and sorted; above, the
# guild's events are walked in order and each batch's entries are checked against the index.
FEW_CANDIDATES = 5_000
_MAX_BATCH = 2_000


async def timeline_page(
    session: AsyncSession,
    guild_id: int,
    *,
    query: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    watch: str | None = None,
    source: str | None = None,
    storyline_id: int | None = None,
    oldest_first: bool = False,
    cursor: str | None = None,
    limit: int = 25,
    aliases: Mapping[str, str] | None = None,
) -> TimelineCursorPage:
    """Return one cursor page of the guild's timeline by `occurred_at` (newest first by default).

    `cursor` is the `next_cursor` of the page before (same filters); BadQuery for a bad one.
    The filters are `list_timeline`'s, plus one storyline. With a `query`, an event is on the
    page when one of its entries (published in the window) or, for a manual event, its title
    matches; only about one page of events is searched, so every page costs about the same.
    """

    if not 1 <= limit <= MAX_CURSOR_PAGE:
        raise BadQuery(f"limit must be 1-{MAX_CURSOR_PAGE}")
    if since is not None and until is not None and since > until:
        raise BadQuery("`since` is after `until`: swap them")
    after = decode_cursor(cursor) if cursor else None
    conds, _ = await _conditions(
        session,
        guild_id,
        query=None,
        since=since,
        until=until,
        watch=watch,
        source=source,
        aliases=aliases,
        search_cap=0,
    )
    if storyline_id is not None:
        conds.append(Event.storyline_id == storyline_id)
    order = (
        (Event.occurred_at.asc(), Event.id.asc())
        if oldest_first
        else (Event.occurred_at.desc(), Event.id.desc())
    )
    stopped: tuple[datetime, int] | None = None
    if query is not None and query.strip():
        if aliases is None:
            aliases = await aliases_for(session, guild_id)
        parsed = _query.parse(query, aliases)
        ids, stopped = await _search_events(
            session,
            guild_id,
            parsed,
            conds,
            oldest_first=oldest_first,
            after=after,
            want=limit + 1,
            since=since,
            until=until,
        )
        by_id = {
            event.id: event
            for event in (await session.scalars(select(Event).where(Event.id.in_(ids)))).all()
        }
        rows = [by_id[i] for i in ids if i in by_id]
    else:
        if after is not None:
            conds.append(_after(after, oldest_first))
        stmt = select(Event).where(*conds).order_by(*order).limit(limit + 1)
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    views = await event_views(session, guild_id, rows)
    next_cursor = None
    if more and rows:
        next_cursor = encode_cursor(rows[-1].occurred_at, rows[-1].id)
    elif stopped is not None:
        next_cursor = encode_cursor(*stopped)
    return TimelineCursorPage(views, next_cursor, stopped is not None and not more)


def _after(position: tuple[datetime, int], oldest_first: bool) -> ColumnElement[bool]:
    """Events strictly after `position` (occurred_at, id) in the page order."""
    # A row value, not `a < x OR (a = x AND id < y)`: given the OR, SQLite's planner takes
    # two index ranges and sorts all they hold (3 s, not 13 ms, under a source filter at 1 M).
    key = tuple_(Event.occurred_at, Event.id)
    at = tuple_(literal(position[0], UTCDateTime()), literal(position[1], Integer()))
    return key > at if oldest_first else key < at


async def _search_events(  # noqa: C901 (two strategies, few candidates or the event walk, and the filters)
    session: AsyncSession,
    guild_id: int,
    parsed: Any,
    conds: list[ColumnElement[bool]],
    *,
    oldest_first: bool,
    after: tuple[datetime, int] | None,
    want: int,
    since: datetime | None,
    until: datetime | None,
) -> tuple[list[int], tuple[datetime, int] | None]:
    """Return the ids of the first `want` events after `after` (in page order) that match.

    The second value is None when the search reached `want` events or the end; otherwise it
    is the (occurred_at, id) of the last event examined when SCAN_BUDGET ran out.
    """
    guilds = scope(guild_id)
    feed_ids = await _query.required_feed_ids(session, parsed, guilds)
    if feed_ids == []:
        return [], None  # no feed can satisfy its `source:` terms (nor a manual event)
    feeds = set(
        feed_ids
        if feed_ids is not None
        else (await session.scalars(select(Feed.id).where(Feed.guild_id.in_(guilds)))).all()
    )
    few = await _query.few_candidates(
        session, parsed, guild_ids=guilds, since=since, until=until, few=FEW_CANDIDATES
    )
    by_event: dict[int, list[int]] | None = None
    restrict: list[int] | None = None
    if few is not None:
        by_event = {}
        for entry_id, event_id in few:
            by_event.setdefault(event_id, []).append(entry_id)
        # Manual events have no entries in the index: their titles are matched below.
        manual = (
            await session.scalars(
                # `= true`, the partial index's own term (ix_events_manual), not `IS 1`.
                select(Event.id).where(*conds, Event.manual == True).limit(FEW_CANDIDATES + 1)  # noqa: E712
            )
        ).all()
        if len(manual) <= FEW_CANDIDATES:
            restrict = sorted(set(by_event).union(manual))
            # By id, not by walking the guild's time index (SQLite's planner would, given
            # the guild column: `+ 0` keeps the condition and hides the index).
            conds = [(Event.guild_id + 0).in_(guilds), *conds[1:]]
        else:
            by_event = None
    order = (
        (Event.occurred_at.asc(), Event.id.asc())
        if oldest_first
        else (Event.occurred_at.desc(), Event.id.desc())
    )
    found: list[int] = []
    position = after
    scanned = 0
    # Walking, the index rules most events out cheaply: start wide (only candidates are
    # verified). By id, a batch is a page and its look-ahead.
    batch = max(8 * want, 200) if by_event is None else max(2 * want, 50)
    while True:
        stmt = select(Event.id, Event.occurred_at, Event.manual, Event.title).where(*conds)
        if position is not None:
            stmt = stmt.where(_after(position, oldest_first))
        if restrict is not None:
            stmt = stmt.where(Event.id.in_(restrict))
        batch = min(batch, SCAN_BUDGET - scanned)  # the budget bounds the events examined
        stmt = stmt.order_by(*order).limit(batch)
        rows = (await session.execute(stmt)).all()
        ids = [row.id for row in rows]
        if by_event is not None:
            candidates = {i: by_event.get(i, []) for i in ids}
        else:
            # The batch's query again as a subquery: cheaper than binding its ids.
            batch_ids = select(stmt.with_only_columns(Event.id).subquery().c.id)
            candidates = await _batch_candidates(
                session, parsed, ids, batch_ids, feeds, since, until
            )
        matched = await _query.matching_entries(
            session, parsed, [entry for i in ids for entry in candidates[i]]
        )
        for row in rows:
            if any(entry in matched for entry in candidates[row.id]) or (
                row.manual and _query.matches(parsed, title=row.title)
            ):
                found.append(row.id)
                if len(found) == want:
                    return found, None
        if len(rows) < batch:
            return found, None
        scanned += len(rows)
        position = (rows[-1].occurred_at, rows[-1].id)
        if scanned >= SCAN_BUDGET:
            return found, position
        # Size the next batch by the share of events that matched so far.
        rate = max(len(found), 1) / scanned
        batch = min(_MAX_BATCH, max(100, int((want - len(found)) / rate * 2)))


async def _batch_candidates(
    session: AsyncSession,
    parsed: Any,
    event_ids: list[int],
    batch_ids: Select[tuple[int]],
    feeds: set[int],
    since: datetime | None,
    until: datetime | None,
) -> dict[int, list[int]]:
    """Map each of `event_ids` (`batch_ids` selects them) to its entries that may match.

    Those are the index's candidates, from the guild's `feeds`, published in the window.

    Only the event index is used (the feed and window are checked here): with the window or
    the feed in SQL, SQLite's planner would rather walk those indexes over the whole table.
    """
    out: dict[int, list[int]] = {i: [] for i in event_ids}
    if not event_ids:
        return out
    rows = [
        row
        for row in (
            await session.execute(
                select(Entry.id, Entry.event_id, Entry.feed_id, Entry.published_at).where(
                    Entry.event_id.in_(batch_ids)
                )
            )
        ).all()
        if row.feed_id in feeds
        and (since is None or row.published_at >= since)
        and (until is None or row.published_at <= until)
    ]
    keep = await _query.indexed_candidates(session, parsed, [row.id for row in rows])
    for row in rows:
        if row.id in keep:
            out[row.event_id].append(row.id)
    return out


async def _conditions(
    session: AsyncSession,
    guild_id: int,
    *,
    query: str | None,
    since: datetime | None,
    until: datetime | None,
    watch: str | None,
    source: str | None,
    aliases: Mapping[str, str] | None,
    search_cap: int,
) -> tuple[list[ColumnElement[bool]], bool]:
    # The guild's condition comes first (_search_events replaces it).
    conds: list[ColumnElement[bool]] = [Event.guild_id.in_(scope(guild_id))]
    if since is not None:
        conds.append(Event.occurred_at >= since)
    if until is not None:
        conds.append(Event.occurred_at <= until)
    if watch is not None and watch.strip():
        watch_ids = await _watch_ids(session, guild_id, watch.strip())
        conds.append(exists().where(Alert.event_id == Event.id, Alert.watch_id.in_(watch_ids)))
    if source is not None and source.strip():
        feed_ids = await source_feed_ids(session, guild_id, source)
        conds.append(exists().where(Entry.event_id == Event.id, Entry.feed_id.in_(feed_ids)))
    if query is not None and query.strip():
        if aliases is None:
            aliases = await aliases_for(session, guild_id)
        ids, capped = await _query_event_ids(
            session, guild_id, query, aliases, since, until, search_cap
        )
        conds.append(Event.id.in_(ids))
        return conds, capped
    return conds, False


async def _watch_ids(session: AsyncSession, guild_id: int, name: str) -> list[int]:
    rows = (
        await session.execute(
            select(Watch.id, Watch.name).where(Watch.guild_id.in_(scope(guild_id)))
        )
    ).all()
    ids = [row.id for row in rows if row.name.casefold() == name.casefold()]
    if not ids:
        raise NotFound(f"no watch named {name!r} on this server (see the watch list)")
    return ids


async def source_feed_ids(session: AsyncSession, guild_id: int, source: str) -> list[int]:
    """Return the visible feeds whose name is `source` or whose host is (under) that domain."""
    wanted = source.strip().casefold()
    bare = wanted.removeprefix("www.")
    rows = (
        await session.execute(
            select(Feed.id, Feed.name, Feed.url).where(Feed.guild_id.in_(scope(guild_id)))
        )
    ).all()
    ids = []
    for row in rows:
        host = url_host(row.url).removeprefix("www.")
        labels = host.split(".")
        if (
            row.name.casefold() == wanted
            or host == bare
            or host.endswith("." + bare)
            or (bare.isalnum() and bare in labels)
        ):
            ids.append(row.id)
    if not ids:
        raise NotFound(f"no feed named {source!r} or at that domain on this server")
    return ids


async def _query_event_ids(
    session: AsyncSession,
    guild_id: int,
    text: str,
    aliases: Mapping[str, str],
    since: datetime | None,
    until: datetime | None,
    cap: int,
) -> tuple[list[int], bool]:
    parsed = _query.parse(text, aliases)
    # An event's time is its earliest source, so every source of an event inside the window is
    # inside it too: the window is a safe pre-filter for the entry search.
    hits = await _query.search(
        session, parsed, guild_ids=scope(guild_id), since=since, until=until, limit=cap + 1
    )
    capped = len(hits) > cap
    hits = hits[:cap]
    ids = {hit.event_id for hit in hits if hit.event_id is not None}
    # Manual events have no entries in the index: match their titles with the same matcher.
    manual_conds: list[ColumnElement[bool]] = [
        Event.guild_id.in_(scope(guild_id)),
        # `= true`, the partial index's own term (ix_events_manual), not `IS 1`.
        Event.manual == True,  # noqa: E712
    ]
    if since is not None:
        manual_conds.append(Event.occurred_at >= since)
    if until is not None:
        manual_conds.append(Event.occurred_at <= until)
    manual = (
        await session.execute(select(Event.id, Event.title).where(*manual_conds).limit(cap))
    ).all()
    ids.update(row.id for row in manual if _query.matches(parsed, title=row.title))
    return sorted(ids), capped


async def event_views(
    session: AsyncSession, guild_id: int, events: Sequence[Event]
) -> list[EventView]:
    """Build views for `events` in three queries (sources, watches, note counts)."""
    ids = [event.id for event in events]
    if not ids:
        return []
    sources: dict[int, list[SourceView]] = {i: [] for i in ids}
    source_rows = await session.execute(
        select(Entry.id, Entry.event_id, Entry.title, Entry.link, Entry.published_at, Feed.name)
        .add_columns(Entry.brief)
        .join(Feed, Feed.id == Entry.feed_id)
        .where(Entry.event_id.in_(ids))
        .order_by(Entry.published_at, Entry.id)
    )
    for entry_id, event_id, title, link, published, feed_name, brief in source_rows:
        sources[event_id].append(SourceView(feed_name, title, link, published, entry_id, brief))
    storyline_ids = sorted({e.storyline_id for e in events if e.storyline_id is not None})
    storyline_titles: dict[int, str] = {}
    if storyline_ids:
        storyline_titles = dict(
            (
                await session.execute(
                    select(Storyline.id, Storyline.title).where(Storyline.id.in_(storyline_ids))
                )
            )
            .tuples()
            .all()
        )
    watches: dict[int, list[str]] = {i: [] for i in ids}
    watch_rows = await session.execute(
        select(Alert.event_id, Watch.name)
        .join(Watch, Watch.id == Alert.watch_id)
        .where(Alert.event_id.in_(ids), Watch.guild_id.in_(scope(guild_id)))
        .order_by(Watch.name)
    )
    for event_id, name in watch_rows:
        if name not in watches[event_id]:
            watches[event_id].append(name)
    notes = dict(
        (
            await session.execute(
                select(EventNote.event_id, func.count(EventNote.id))
                .where(EventNote.event_id.in_(ids))
                .group_by(EventNote.event_id)
            )
        )
        .tuples()
        .all()
    )
    return [
        EventView(
            id=event.id,
            title=event.title,
            link=event.link,
            occurred_at=event.occurred_at,
            sources=sources[event.id],
            watches=watches[event.id],
            note_count=int(notes.get(event.id, 0)),
            manual=bool(event.manual),
            storyline_id=event.storyline_id if event.storyline_id in storyline_titles else None,
            storyline_title=storyline_titles.get(event.storyline_id or 0),
        )
        for event in events
    ]
