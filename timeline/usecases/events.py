"""Show, annotate, add, merge and split events."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.errors import BadQuery, Conflict, NotFound
from timeline.domain.text_dates import extract_dates
from timeline.storage.models import Alert, Entry, Event, EventNote
from timeline.storage.outbox import storyline_refs
from timeline.usecases._common import (
    MAX_NOTE,
    MAX_TITLE,
    check_url,
    clean_text,
    get_event,
    refresh_occurred_at,
    scope,
)
from timeline.usecases.timeline import event_views
from timeline.usecases.views import DateView, EventDetail, EventView, NoteView

log = logging.getLogger(__name__)

MAX_DATES = 20


async def show_event(session: AsyncSession, guild_id: int, event_id: int) -> EventDetail:
    """Return an event with all its sources, matched watches, notes and mentioned dates."""
    event = await get_event(session, guild_id, event_id)
    (view,) = await event_views(session, guild_id, [event])
    notes = [
        NoteView(note.id, note.author, note.text, note.created_at)
        for note in (
            await session.scalars(
                select(EventNote)
                .where(EventNote.event_id == event.id)
                .order_by(EventNote.created_at, EventNote.id)
            )
        ).all()
    ]
    summaries = dict(
        (await session.execute(select(Entry.id, Entry.summary).where(Entry.event_id == event.id)))
        .tuples()
        .all()
    )
    storylines = await storyline_refs(session, [event])
    return EventDetail(
        view, notes, await _dates(session, event), summaries, storylines.get(event.id)
    )


async def _dates(session: AsyncSession, event: Event) -> list[DateView]:
    rows = (
        await session.execute(
            select(Entry.title, Entry.summary, Entry.published_at).where(Entry.event_id == event.id)
        )
    ).all()
    texts = [(f"{row.title}. {row.summary}", row.published_at) for row in rows]
    if not texts:
        texts = [(event.title, event.occurred_at)]
    return _extract(extract_dates, event.id, texts)


async def mentioned_dates(
    session: AsyncSession, guild_id: int, events: Sequence[EventView]
) -> dict[int, list[DateView]]:
    """Return the dates mentioned in each event's sources (as `/event show` lists them).

    One query for all of `events` (a page of the timeline); only the guild's events count.
    """
    # The guild check is made on the ids, not joined into the entries query: with the join,
    # SQLite walks the guild's whole event index (a million rows) instead of 25 keys.
    visible = set(scope(guild_id))
    ids = [
        row.id
        for row in await session.execute(
            select(Event.id, Event.guild_id).where(Event.id.in_([e.id for e in events]))
        )
        if row.guild_id in visible
    ]
    if not ids:
        return {}
    texts: dict[int, list[tuple[str, datetime]]] = {i: [] for i in ids}
    rows = await session.execute(
        select(Entry.event_id, Entry.title, Entry.summary, Entry.published_at)
        .where(Entry.event_id.in_(ids))
        .order_by(Entry.published_at, Entry.id)
    )
    for event_id, title, summary, published in rows:
        texts[event_id].append((f"{title}. {summary}", published))
    found = {}
    for event in events:
        if event.id not in texts:
            continue  # another guild's event
        # No sources (a manual event): its title is what it says, as in `_dates`.
        own = texts[event.id] or [(event.title, event.occurred_at)]
        found[event.id] = _extract(extract_dates, event.id, own)
    return found


@functools.lru_cache(maxsize=8192)
def _cached_dates(extract_dates: Any, text: str, published: datetime) -> tuple[Any, ...]:
    # The extractor is pure and costs about 1 ms per source: a timeline page of 25 events
    # would spend most of its time here on every view without this cache.
    return tuple(extract_dates(text, published))


def _extract(
    extract_dates: Any, event_id: int, texts: Sequence[tuple[str, datetime]]
) -> list[DateView]:
    found: list[DateView] = []
    seen: set[tuple[object, object, str]] = set()
    for text, published in texts:
        try:
            mentions = _cached_dates(extract_dates, text, published)
        except Exception:  # a bug there must not break /event show
            log.exception("date extraction failed", extra={"event_id": event_id})
            continue
        for mention in mentions:
            key = (mention.start, mention.end, mention.precision)
            if key in seen:
                continue
            seen.add(key)
            found.append(DateView(mention.start, mention.end, mention.precision, mention.phrase))
    found.sort(key=lambda d: (d.start, d.end))
    return found[:MAX_DATES]


async def add_note(
    session: AsyncSession, guild_id: int, event_id: int, text: str, actor: str
) -> NoteView:
    """Attach a note to an event."""
    event = await get_event(session, guild_id, event_id)
    body = clean_text(text, "note", MAX_NOTE, multiline=True)
    note = EventNote(event_id=event.id, author=actor[:100] or "unknown", text=body)
    session.add(note)
    await session.flush()
    log.info(
        "note added to event %s by %s in guild %s",
        event.id,
        actor,
        guild_id,
        extra={"event_id": event.id, "guild_id": guild_id},
    )
    return NoteView(note.id, note.author, note.text, note.created_at)


async def add_manual_event(
    session: AsyncSession,
    guild_id: int,
    when: datetime,
    title: str,
    url: str | None,
    actor: str,
) -> EventView:
    """Record an event no feed carried."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise BadQuery("the event time needs a time zone (UTC is assumed by the parsers)")
    clean_title = clean_text(title, "title", MAX_TITLE)
    link = check_url(url, "link") if url and url.strip() else None
    event = Event(
        guild_id=guild_id,
        title=clean_title,
        link=link,
        occurred_at=when,
        manual=True,
        created_by=actor[:100],
    )
    session.add(event)
    await session.flush()
    log.info(
        "manual event %s added by %s in guild %s",
        event.id,
        actor,
        guild_id,
        extra={"event_id": event.id, "guild_id": guild_id},
    )
    (view,) = await event_views(session, guild_id, [event])
    return view


async def merge_events(
    session: AsyncSession, guild_id: int, keep_id: int, other_id: int, actor: str
) -> EventView:
    """Move the other event's sources, alerts and notes into `keep_id` and delete it.

    The outbox holds one alert per (watch, event): where both events alerted the same watch,
    the one already sent survives (it has a Discord message to edit) and is marked dirty so it
    is re-rendered with the new sources.
    """
    if keep_id == other_id:
        raise Conflict("an event cannot be merged with itself")
    keep = await get_event(session, guild_id, keep_id)
    other = await get_event(session, guild_id, other_id)
    if keep.guild_id != other.guild_id:
        raise Conflict(
            f"event #{keep_id} and event #{other_id} belong to different scopes "
            "(one comes from the shared config-file feeds): they cannot be merged"
        )
    keep_alerts = {a.watch_id: a for a in await _alerts(session, keep.id)}
    for alert in await _alerts(session, other.id):
        mine = keep_alerts.get(alert.watch_id)
        if mine is None:
            continue
        if alert.status == "sent" and mine.status != "sent":
            # Keep the delivered one: its Discord message is what people already saw.
            await session.execute(delete(Alert).where(Alert.id == mine.id))
            await session.execute(
                update(Alert).where(Alert.id == alert.id).values(event_id=keep.id)
            )
        else:
            await session.execute(delete(Alert).where(Alert.id == alert.id))
    await session.execute(update(Alert).where(Alert.event_id == other.id).values(event_id=keep.id))
    await session.execute(
        update(Alert).where(Alert.event_id == keep.id, Alert.status == "sent").values(dirty=True)
    )
    await session.execute(update(Entry).where(Entry.event_id == other.id).values(event_id=keep.id))
    await session.execute(
        update(EventNote).where(EventNote.event_id == other.id).values(event_id=keep.id)
    )
    earliest_own = min(keep.occurred_at, other.occurred_at)
    other_link = other.link
    await session.execute(delete(Event).where(Event.id == other.id))
    session.expire_all()
    keep = await get_event(session, guild_id, keep_id)
    keep.occurred_at = earliest_own
    await refresh_occurred_at(session, keep)
    if not keep.link and other_link:
        keep.link = other_link
    await session.flush()
    log.info(
        "event %s merged into %s by %s in guild %s",
        other_id,
        keep_id,
        actor,
        guild_id,
        extra={"event_id": keep_id, "merged_event_id": other_id, "guild_id": guild_id},
    )
    (view,) = await event_views(session, guild_id, [keep])
    return view


async def split_event(
    session: AsyncSession, guild_id: int, event_id: int, entry_id: int, actor: str
) -> int:
    """Move one source out of an event into a new event of its own; return the new event id.

    The alerts stay with the original event (people were told about it); sent ones are marked
    dirty so their message drops the source. The new event alerts nobody.
    """
    event = await get_event(session, guild_id, event_id)
    entries = (await session.scalars(select(Entry).where(Entry.event_id == event.id))).all()
    entry = next((e for e in entries if e.id == entry_id), None)
    if entry is None:
        raise NotFound(f"source #{entry_id} is not part of event #{event_id} (see /event show)")
    if len(entries) < 2:
        raise Conflict(f"event #{event_id} has only this source: there is nothing to split")
    new = Event(
        guild_id=event.guild_id,
        title=entry.title,
        link=entry.link,
        occurred_at=entry.published_at,
        created_by=actor[:100],
    )
    session.add(new)
    await session.flush()
    entry.event_id = new.id
    await session.flush()
    await refresh_occurred_at(session, event)
    if entry.link and event.link == entry.link:
        rest = sorted((e for e in entries if e.id != entry_id), key=lambda e: e.published_at)
        event.link = rest[0].link if rest else None
    await session.execute(
        update(Alert).where(Alert.event_id == event.id, Alert.status == "sent").values(dirty=True)
    )
    await session.flush()
    log.info(
        "source %s split from event %s into %s by %s in guild %s",
        entry_id,
        event_id,
        new.id,
        actor,
        guild_id,
        extra={"event_id": event_id, "new_event_id": new.id, "guild_id": guild_id},
    )
    return new.id


async def _alerts(session: AsyncSession, event_id: int) -> list[Alert]:
    return list((await session.scalars(select(Alert).where(Alert.event_id == event_id))).all())
