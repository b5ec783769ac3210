"""Store new feed items as entries, join them into events, match watches, write the outbox.

Everything for one feed's fetch happens in one transaction (the poller's: a SAVEPOINT of a group
of fetches committed together, see `PollStore.record`): the entries, their events, and the alerts
they cause. A crash in between leaves nothing half-done; polling the same feed twice stores
nothing twice (unique feed + key, enforced by the database).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, func, literal, or_, select, text, union_all, update
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncResult, AsyncSession

from feeds.types import FeedItem
from timeline.domain.clustering import EventIndex
from timeline.domain.errors import BadQuery
from timeline.domain.query import Document, WatchIndex, feed_source_names, parse_query
from timeline.storage.bulk import paused_gc
from timeline.storage.models import GLOBAL_SCOPE, Alert, Alias, Entry, Event, Feed, Watch
from timeline.storage.notify import lock_key
from timeline.storage.search import sync_search_index
from timeline.storage.storylines import NewEvent, StorylineCache, write_briefs

log = logging.getLogger(__name__)

MAX_KEY = 512
_IN_CHUNK = 500  # values per IN (...) list: well under every backend's parameter limit
# Built once on the table: an ORM insert built per call is compiled per call (no cache hit).
_EVENTS = cast(Table, Event.__table__)
# Executed with a list of rows that carry their ids (see _EventIds): one executemany.
_INSERT_EVENT = sa_insert(_EVENTS)
_ENTRIES = cast(Table, Entry.__table__)
# ON CONFLICT DO NOTHING: another poller may have stored the same entry a moment ago.
# Executed with a list of rows (executemany with RETURNING): compiled once per dialect.
_INSERT_ENTRIES = {
    name: dialect_insert(_ENTRIES)
    .on_conflict_do_nothing(index_elements=["feed_id", "key"])
    .returning(_ENTRIES.c.id, _ENTRIES.c.key)
    for name, dialect_insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
CLUSTER_WINDOW = timedelta(hours=72)


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An outbox row this ingest created (what `poll --once` prints)."""

    alert_id: int
    watch: str
    channel_id: int
    event_id: int
    title: str
    link: str | None
    sources: tuple[str, ...]
    published: datetime
    terms: tuple[str, ...]


@dataclass(slots=True)
class IngestReport:
    """What one ingest stored."""

    new_entries: int = 0
    entry_ids: list[int] = field(default_factory=list)
    new_events: list[int] = field(default_factory=list)
    joined_events: list[int] = field(default_factory=list)
    alerts: list[NewAlert] = field(default_factory=list)
    edited_alerts: int = 0
    # New events placed in a storyline: {event id: storyline id}.
    storylines: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CompiledWatch:
    id: int
    guild_id: int
    name: str
    channel_id: int


class WatchSet:
    """Every enabled watch compiled once, indexed by the terms each requires.

    Built once per polling round and shared by every feed's ingest in it.
    """

    def __init__(self, watches: Sequence[Watch], aliases: dict[int, dict[str, str]]) -> None:
        self.watches: dict[int, CompiledWatch] = {}
        compiled = []
        for watch in watches:
            scope_aliases = {**aliases.get(GLOBAL_SCOPE, {}), **aliases.get(watch.guild_id, {})}
            try:
                query = parse_query(watch.query, scope_aliases)
            except BadQuery as exc:
                log.warning("watch %r (id %s) skipped: %s", watch.name, watch.id, exc)
                continue
            self.watches[watch.id] = CompiledWatch(
                watch.id, watch.guild_id, watch.name, watch.channel_id
            )
            compiled.append((watch.id, query))
        self.index = WatchIndex(compiled)

    def match(self, doc: Document, feed_guild: int) -> list[tuple[CompiledWatch, list[str]]]:
        """Return the watches that match `doc` and may see a feed of `feed_guild`."""
        found = []
        for watch_id, result in self.index.match(doc):
            watch = self.watches[watch_id]
            # A config-file feed (scope 0) is seen by every guild's watches; a guild's own feed
            # only by that guild's watches and the config-file ones.
            if feed_guild in (GLOBAL_SCOPE, watch.guild_id) or watch.guild_id == GLOBAL_SCOPE:
                found.append((watch, list(result.terms)))
        return found


async def load_watch_set(session: AsyncSession) -> WatchSet:
    """Compile every enabled, active (not retired) watch with its guild's aliases."""

    watches = (
        await session.scalars(
            select(Watch).where(Watch.enabled.is_(True), Watch.retired_at.is_(None))
        )
    ).all()
    aliases: dict[int, dict[str, str]] = {}
    for alias in (await session.scalars(select(Alias))).all():
        aliases.setdefault(alias.guild_id, {})[alias.name] = alias.query
    return WatchSet(watches, aliases)


async def load_recent_sources(
    session: AsyncSession,
    indexes: dict[int, EventIndex],
    *,
    seen_after: datetime | None,
    now: datetime,
    skip: Container[int] = frozenset(),
    loaded: dict[int, datetime] | None = None,
    window: timedelta = CLUSTER_WINDOW,
) -> datetime | None:
    """Add entries first seen after `seen_after` to the per-scope indexes, those the live
    index would still hold: published *or* first seen within the window of `now` (the rule
    of :meth:`EventIndex.prune`, so a restart does not change what ingest clusters). Return
    the newest first_seen_at loaded, the next call's watermark.

    `skip` holds the ids of entries already in the indexes (this process stored them, or
    an earlier call loaded them); `loaded`, if given, receives each loaded entry's id and
    first_seen_at.
    """
    in_window = or_(Entry.published_at >= now - window, Entry.first_seen_at >= now - window)
    columns = (
        Entry.id,
        Event.guild_id,
        Entry.event_id,
        Entry.key,
        Entry.title,
        Entry.summary,
        Entry.link,
        Entry.published_at,
        Entry.first_seen_at,
    )
    order = (Entry.first_seen_at, Entry.id)
    if seen_after is None or not skip:
        query = select(*columns).join(Event, Event.id == Entry.event_id).where(in_window)
        if seen_after is not None:
            query = query.where(Entry.first_seen_at > seen_after)
        # Streamed in batches: the first load after a restart (or after a first poll of many
        # feeds) reads every entry of the window, tens of thousands of rows.
        rows = await session.stream(query.order_by(*order).execution_options(yield_per=1000))
        with paused_gc():
            return await _add_sources(rows, indexes, seen_after, skip, loaded, window)
    # A later round: most rows since `seen_after` are in the indexes already (this process
    # stored them, or an earlier round read them). Read their ids first, narrow and cheap,
    # then the whole rows of the others only, in the same order.
    # (Ids only: converting tens of thousands of timestamps would cost more than the query.)
    since = and_(in_window, Entry.first_seen_at > seen_after)
    watermark = await session.scalar(
        select(func.max(Entry.first_seen_at)).join(Event, Event.id == Entry.event_id).where(since)
    )
    if watermark is None:
        return seen_after
    # Up to the watermark read first: an entry committed meanwhile is read next round. The
    # longest runs of consecutive ids already in the indexes are left out by the database
    # (tens of thousands of rows after a first poll or a restart, every round for a lease).
    known = [~Entry.id.between(low, high) for low, high in _id_runs(skip)]
    ids = (
        await session.scalars(
            select(Entry.id)
            .join(Event, Event.id == Entry.event_id)
            .where(since, Entry.first_seen_at <= watermark, *known)
            .order_by(*order)
        )
    ).all()
    missing = [entry_id for entry_id in ids if entry_id not in skip]
    for start in range(0, len(missing), _IN_CHUNK):
        chunk = missing[start : start + _IN_CHUNK]
        rows = await session.stream(
            select(*columns)
            .join(Event, Event.id == Entry.event_id)
            .where(Entry.id.in_(chunk))
            .order_by(*order)
        )
        await _add_sources(rows, indexes, seen_after, skip, loaded, window)
    return watermark


def _id_runs(ids: Container[int], most: int = 32, shortest: int = 64) -> list[tuple[int, int]]:
    """The `most` longest runs of consecutive ids in `ids` (of `shortest` ids or more)."""
    if not isinstance(ids, Collection) or not ids:
        return []
    ordered = sorted(ids)
    runs: list[tuple[int, int]] = []
    low = high = ordered[0]
    for entry_id in ordered[1:]:
        if entry_id != high + 1:
            runs.append((low, high))
            low = entry_id
        high = entry_id
    runs.append((low, high))
    longest = sorted((r for r in runs if r[1] - r[0] + 1 >= shortest), key=lambda r: r[0] - r[1])
    return sorted(longest[:most])


async def _add_sources(
    rows: AsyncResult[Any],
    indexes: dict[int, EventIndex],
    watermark: datetime | None,
    skip: Container[int],
    loaded: dict[int, datetime] | None,
    window: timedelta,
) -> datetime | None:
    """Add each entry row of `rows` to its scope's index; return the last first_seen_at."""
    async for batch in rows.partitions():  # a batch per await, not a row (a restart reads 50 k)
        watermark = _add_batch(batch, indexes, watermark, skip, loaded, window)
    return watermark


def _add_batch(
    rows: Sequence[Any],
    indexes: dict[int, EventIndex],
    watermark: datetime | None,
    skip: Container[int],
    loaded: dict[int, datetime] | None,
    window: timedelta,
) -> datetime | None:
    for (
        entry_id,
        guild_id,
        event_id,
        key,
        title,
        summary,
        link,
        published,
        first_seen,
    ) in rows:
        watermark = first_seen
        if entry_id in skip:
            continue
        if loaded is not None:
            loaded[entry_id] = first_seen
        index = indexes.setdefault(guild_id, EventIndex(window))
        index.add(
            event_id,
            title=title,
            summary=summary,
            published=published,
            link=link,
            keys=(key,),
            seen=first_seen,
        )
    return watermark


async def _stored_keys(session: AsyncSession, feed: Feed, by_key: dict[str, FeedItem]) -> set[str]:
    """Return the keys of `by_key` whose item the feed already has stored.

    An item is stored under its own key, or under one of its `same_as` keys (the guid with or
    without a content suffix, as another document gave it) by an entry with the same title and
    link: item identity must not depend on whether a later document shares the guid.
    """
    aliases = {k: [_entry_key(a) for a in item.same_as] for k, item in by_key.items()}
    wanted = sorted(set(by_key) | {a for keys in aliases.values() for a in keys})
    stored: dict[str, tuple[str, str | None]] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        rows = await session.execute(
            select(Entry.key, Entry.title, Entry.link).where(
                Entry.feed_id == feed.id, Entry.key.in_(chunk)
            )
        )
        stored.update({key: (title, link) for key, title, link in rows.tuples()})
    found = set()
    for key, item in by_key.items():
        if key in stored or any(
            stored.get(alias) == (item.title, item.link) for alias in aliases[key]
        ):
            found.add(key)
    return found


def _entry_key(key: str) -> str:
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _dialect_name(session: AsyncSession) -> str:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return "postgresql" if dialect == "postgresql" else "sqlite"


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return postgresql.insert if _dialect_name(session) == "postgresql" else sqlite.insert


async def ingest(  # noqa: C901 (the ingest steps in order, in one transaction)
    session: AsyncSession,
    feed: Feed,
    items: Iterable[FeedItem],
    watches: WatchSet,
    *,
    now: datetime,
    alert: bool,
    events: EventIndex | None = None,
    storylines: StorylineCache | None = None,
    sync_search: bool = True,
) -> IngestReport:
    """Store `items` of `feed`; return what was new. The caller commits.

    `events` is the in-memory index of the feed's scope's recent events (clustering); each new
    entry is added to it. `storylines` places each new event in a storyline (and is extended
    likewise). If the transaction fails, the caller must drop both.

    With `sync_search` False the caller indexes the new entries for search itself
    (`sync_search_index`) before it commits: a group of ingests in one transaction does it once.
    """
    report = IngestReport()
    by_key: dict[str, FeedItem] = {}
    for item in items:
        by_key.setdefault(_entry_key(item.key), item)
    if not by_key:
        return report

    existing = await _stored_keys(session, feed, by_key)
    fresh = {k: v for k, v in by_key.items() if k not in existing}
    if not fresh:
        return report

    await lock_links(session, [item.link for item in fresh.values() if item.link])
    if storylines is not None:
        # (At a start the storyline indexes may still be loading: see StorylineCache.ready.)
        await storylines.ready(session, now)
    rows = [
        {
            "feed_id": feed.id,
            "key": key,
            "title": item.title,
            "summary": item.summary,
            "link": item.link,
            "author": item.author,
            "image_url": item.image,
            "tags": list(item.tags),
            "published_at": item.published,
            "published_is_estimated": item.published_is_estimated,
            "first_seen_at": now,
        }
        for key, item in fresh.items()
    ]
    inserted = {
        key: entry_id
        for entry_id, key in (
            await session.execute(_INSERT_ENTRIES[_dialect_name(session)], rows)
        ).all()
    }
    report.new_entries = len(inserted)
    report.entry_ids = list(inserted.values())
    names = feed_source_names(feed.name, feed.url)

    # One look-up for every link of the batch (not two queries per item); events this batch
    # creates or joins are added as it goes, as the per-item queries would have seen them.
    links = sorted({link for k in inserted if (link := fresh[k].link)})
    by_link = await _events_by_links(session, feed, links)
    entry_events: list[dict[str, int]] = []
    created: list[NewEvent] = []
    joined_entries: list[tuple[int, int]] = []
    # New events get their ids up front and are inserted together after the loop (one
    # executemany); the alerts, which reference them, are written after that, in order.
    ids = _EventIds(session, len(inserted))
    pending: dict[int, dict[str, Any]] = {}
    matched: list[tuple[FeedItem, int, list[tuple[CompiledWatch, list[str]]]]] = []
    for key, entry_id in inserted.items():
        item = fresh[key]
        event_id = await _find_event(session, feed, item, key, events, by_link, pending)
        if event_id is None:
            event_id = await ids.next()
            pending[event_id] = {
                "id": event_id,
                "guild_id": feed.guild_id,
                "title": item.title or "(untitled)",
                "link": item.link,
                "occurred_at": item.published,
                "created_at": now,
                "updated_at": now,
            }
            report.new_events.append(event_id)
            created.append(
                NewEvent(
                    event_id, feed.guild_id, item.published, item.title, item.summary, entry_id
                )
            )
        else:
            report.joined_events.append(event_id)
            joined_entries.append((entry_id, event_id))
            if (row := pending.get(event_id)) is not None:
                row["occurred_at"] = min(row["occurred_at"], item.published)
            else:
                await session.execute(
                    update(Event)
                    .where(Event.id == event_id, Event.occurred_at > item.published)
                    .values(occurred_at=item.published, updated_at=now)
                )
            if storylines is not None:
                storylines.index(feed.guild_id).move_earlier(event_id, item.published)
        if item.link:
            by_link.setdefault(item.link, event_id)
        entry_events.append({"id": entry_id, "event_id": event_id})
        if events is not None:
            events.add(
                event_id,
                title=item.title,
                summary=item.summary,
                published=item.published,
                link=item.link,
                keys=(key,),
                seen=now,
            )
        if alert:
            doc = Document(title=item.title, summary=item.summary, source_names=names)
            matched.append((item, event_id, watches.match(doc, feed.guild_id)))

    if pending:
        await session.execute(_INSERT_EVENT, list(pending.values()))
    for item, event_id, found in matched:
        for watch, terms in found:
            alert_id = await _add_alert(session, watch, event_id, terms, now)
            if alert_id is not None:
                report.alerts.append(
                    NewAlert(
                        alert_id=alert_id,
                        watch=watch.name,
                        channel_id=watch.channel_id,
                        event_id=event_id,
                        title=item.title,
                        link=item.link,
                        sources=(feed.name,),
                        published=item.published,
                        terms=tuple(terms),
                    )
                )

    # Index the new entries for search in the same transaction, so a search never pays for a
    # backlog of a whole polling round. (Only inserts queue entries for it: see the triggers.)
    if sync_search and inserted:
        await sync_search_index(session)

    # Storylines in the same transaction; the subjects they store with the entries that
    # created events are written with the entries' events just below.
    subjects: dict[int, str] = {}
    if storylines is not None and created:
        report.storylines = await storylines.place(session, created, now=now, subjects=subjects)
    if entry_events:
        # One executemany by primary key instead of one UPDATE per entry.
        await session.execute(
            update(Entry),
            [{**row, "subject": subjects.get(row["id"])} for row in entry_events],
        )

    # Source briefs last: they read the entries' events.
    if joined_entries:
        await write_briefs(session, joined_entries)

    # An event that gained a source and was already alerted: its message must show the new
    # source, so delivery edits it (dirty) instead of posting again.
    joined = set(report.joined_events)
    if joined:
        result = await session.execute(
            update(Alert)
            .where(Alert.event_id.in_(joined), Alert.status == "sent")
            .values(dirty=True)
        )
        report.edited_alerts = result.rowcount or 0  # type: ignore[attr-defined]
    return report


class _EventIds:
    """Ids for the events one ingest creates, handed out before the rows are inserted.

    SQLite: the next rowids, counted on from the largest (as SQLite would pick them), read
    once per transaction: ingest has written the entries by then, so the transaction holds
    the database's write lock and no other connection inserts an event until it ends.
    PostgreSQL: values of the events' sequence, as many as the ingest may need at most, in
    one statement (those a join leaves unused are a gap, as a rolled-back insert leaves).
    """

    def __init__(self, session: AsyncSession, most: int) -> None:
        self.session = session
        self.most = most
        self.ids: list[int] | None = None

    async def next(self) -> int:
        session = self.session
        if _dialect_name(session) == "postgresql":
            if self.ids is None:
                rows = await session.execute(
                    text(
                        "SELECT nextval(pg_get_serial_sequence('events', 'id')) "
                        "FROM generate_series(1, :n)"
                    ),
                    {"n": self.most},
                )
                self.ids = sorted((int(r[0]) for r in rows), reverse=True)
            return self.ids.pop()
        # Counted on in the session for the rest of its transaction (its root transaction).
        transaction = session.sync_session.get_transaction()
        cached = session.info.get(_NEXT_EVENT_ID)
        if cached is not None and cached[0] is transaction:
            event_id = int(cached[1])
        else:
            largest = await session.scalar(select(func.max(Event.id)))
            event_id = int(largest or 0) + 1
        session.info[_NEXT_EVENT_ID] = (transaction, event_id + 1)
        return event_id


_NEXT_EVENT_ID = "timeline.next_event_id"


async def lock_links(session: AsyncSession, links: list[str]) -> None:
    """On PostgreSQL, serialise ingests that carry the same story link until they commit.

    Two pollers storing the same link at once would each miss the other's uncommitted event
    and create two. A transaction-scoped advisory lock per link makes the second wait; under
    READ COMMITTED its link look-up then sees the first one's event and joins it. Locks are
    taken in sorted order so two ingests never wait on each other in a circle.
    """
    if not links or session.bind is None or session.bind.dialect.name != "postgresql":
        return

    keys = sorted({lock_key("link:" + link) for link in links})
    # One round trip; unnest yields the sorted array in order, so the locks are taken in order.
    await session.execute(
        text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k"),
        {"keys": keys},
    )


async def _find_event(
    session: AsyncSession,
    feed: Feed,
    item: FeedItem,
    key: str,
    events: EventIndex | None,
    by_link: dict[str, int],
    pending: Container[int] = (),
) -> int | None:
    """Return the event this item belongs to, or None for a new event.

    The same canonical link anywhere in the scope's history is the same event (a database
    look-up); otherwise the clustering index decides among the recent events (near copies and
    the same story told by another outlet).
    """
    if item.link:
        found = by_link.get(item.link)
        if found is not None:
            return found
    if events is None:
        return None
    match = events.find(
        title=item.title,
        summary=item.summary,
        published=item.published,
        link=item.link,
        keys=(key,),
    )
    if match is None:
        return None
    if match.event_id in pending:  # created by this batch, not inserted yet
        return match.event_id
    # The index may name an event an admin has since merged away.
    exists = await session.scalar(
        select(Event.id).where(Event.id == match.event_id, Event.guild_id == feed.guild_id)
    )
    if exists is None:
        return None
    log.debug("entry %r joins event %d (%s, %.2f)", key, match.event_id, match.stage, match.score)
    return match.event_id


async def _events_by_links(session: AsyncSession, feed: Feed, links: list[str]) -> dict[str, int]:
    """Map each link already known in the feed's scope to its event (earliest event first).

    An event's own link decides; an entry's link (of a source that joined an event under
    another link) only for the links no event has. Both in one statement per chunk.
    """
    scope = [feed.guild_id] if feed.guild_id == GLOBAL_SCOPE else [feed.guild_id, GLOBAL_SCOPE]
    found: dict[str, int] = {}
    for start in range(0, len(links), _IN_CHUNK):
        chunk = links[start : start + _IN_CHUNK]
        by_event = (
            select(literal(0).label("via"), Event.link, func.min(Event.id).label("event_id"))
            # "+ 0": without it SQLite (no ANALYZE statistics) walks every event of the
            # guild through ix_events_guild_occurred instead of looking the links up.
            .where(Event.link.in_(chunk), (Event.guild_id + 0).in_(scope))
            .group_by(Event.link)
        )
        by_entry = (
            select(literal(1).label("via"), Entry.link, func.min(Entry.event_id))
            .join(Feed, Feed.id == Entry.feed_id)
            .where(
                Entry.link.in_(chunk),
                Entry.event_id.is_not(None),
                Feed.guild_id.in_(scope),
            )
            .group_by(Entry.link)
        )
        via_entry: dict[str, int] = {}
        for via, link, event_id in (await session.execute(union_all(by_event, by_entry))).all():
            (via_entry if via else found)[link] = int(event_id)
        for link, event_id in via_entry.items():
            found.setdefault(link, event_id)
    return found


async def _add_alert(
    session: AsyncSession, watch: CompiledWatch, event_id: int, terms: list[str], now: datetime
) -> int | None:
    """Write one pending outbox row for (watch, event) unless one exists; return its id."""
    insert = _insert(session)
    stmt = (
        insert(Alert)
        .values(
            watch_id=watch.id,
            event_id=event_id,
            channel_id=watch.channel_id,
            status="pending",
            dirty=False,
            silent=False,
            matched_terms=terms,
            attempts=0,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["watch_id", "event_id"])
        .returning(Alert.id)
    )
    alert_id = (await session.execute(stmt)).scalar()
    if alert_id is None:
        # Already alerted for this event: merge in the terms this source matched.
        existing = await session.scalar(
            select(Alert).where(and_(Alert.watch_id == watch.id, Alert.event_id == event_id))
        )
        if existing is not None:
            merged = list(dict.fromkeys([*existing.matched_terms, *terms]))
            if merged != existing.matched_terms:
                existing.matched_terms = merged
        return None
    return int(alert_id)
