"""Storylines in the ingest transaction: place new events, name storylines, brief new sources.

The decision itself is :mod:`timeline.storylines` (pure, no database). This module keeps one
:class:`~timeline.storylines.StorylineIndex` per guild scope in memory, brings it up to date
from the database at the start of every round (events other pollers stored included), and
writes what the index decides in the same transaction as the entries and events.

One rule decides what the index holds, live and after a restart: the events whose date
(``events.occurred_at``) lies within the storyline window (plus `GRACE`) of the round's clock, each reduced
to the subject of its first source (lowest entry id). A process that reloads the index from
the database therefore places the next event exactly as one that never stopped.

The database is the authority on membership: an admin may have renamed, merged or detached
since the index was loaded, so the storyline of a matched event is read back from its row.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy import insert as sa_insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Entry, Event, Storyline
from .storylines import WINDOW, StorylineIndex, source_brief, subject

log = logging.getLogger(__name__)

# The index keeps events a little longer than the window of now, so an item that arrives up
# to this late (a feed polled after downtime) still sees its whole window of earlier events.
GRACE = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ingest just created, with the text of the source that created it."""

    event_id: int
    guild_id: int
    at: datetime
    title: str
    summary: str


class StorylineCache:
    """The per-guild storyline indexes of one process, refreshed from the database."""

    def __init__(self, window: timedelta = WINDOW) -> None:
        self.window = window
        self.indexes: dict[int, StorylineIndex] = {}
        self._seen: datetime | None = None
        self._seen_id = 0

    def index(self, guild_id: int) -> StorylineIndex:
        """The index of one guild scope (created empty)."""
        return self.indexes.setdefault(guild_id, StorylineIndex(self.window))

    def drop(self) -> None:
        """Forget everything (after a failed transaction); the next refresh reloads."""
        self.indexes.clear()
        self._seen = None
        self._seen_id = 0

    async def refresh(self, session: AsyncSession, now: datetime) -> int:
        """Add the events stored since the last refresh (by anyone); prune; return how many.

        Events are read in (created_at, id) order, so a reload adds them in the order the live
        process did.
        """
        first = (
            select(Entry.event_id, func.min(Entry.id).label("entry_id"))
            .where(Entry.event_id.is_not(None))
            .group_by(Entry.event_id)
            .subquery()
        )
        query = (
            select(
                Event.id,
                Event.guild_id,
                Event.occurred_at,
                Event.storyline_id,
                Event.created_at,
                Entry.title,
                Entry.summary,
            )
            .join(first, first.c.event_id == Event.id)
            .join(Entry, Entry.id == first.c.entry_id)
            .where(Event.occurred_at >= now - self.window - GRACE)
            .order_by(Event.created_at, Event.id)
        )
        if self._seen is not None:
            query = query.where(
                (Event.created_at > self._seen)
                | ((Event.created_at == self._seen) & (Event.id > self._seen_id))
            )
        added = 0
        rows = await session.stream(query.execution_options(yield_per=1000))
        async for event_id, guild_id, at, storyline_id, created, title, summary in rows:
            self._seen, self._seen_id = created, event_id
            index = self.index(guild_id)
            if event_id in index:
                continue
            index.add(event_id, at, subject(title, summary or ""), storyline_id)
            added += 1
        for index in self.indexes.values():
            index.prune(now - GRACE)
        return added

    async def place(
        self, session: AsyncSession, events: Sequence[NewEvent], *, now: datetime
    ) -> dict[int, int]:
        """Put each new event in the storyline of the earlier event it continues, if any.

        Returns {event id: storyline id} for the events placed. The caller commits.
        """
        placed: dict[int, int] = {}
        cutoff = now - self.window - GRACE
        for new in events:
            if new.at < cutoff:
                # Outside the window of now: the index would not hold it after a reload either.
                continue
            index = self.index(new.guild_id)
            subj = subject(new.title, new.summary)
            match = index.find(subj, new.at, exclude=new.event_id)
            storyline_id: int | None = None
            if match is not None:
                storyline_id = await self._join(session, index, new, match.event_id, now)
            index.add(new.event_id, new.at, subj, storyline_id)
            if storyline_id is not None:
                placed[new.event_id] = storyline_id
                await self._retitle(session, index, storyline_id, now)
        return placed

    async def _join(
        self,
        session: AsyncSession,
        index: StorylineIndex,
        new: NewEvent,
        earlier_id: int,
        now: datetime,
    ) -> int | None:
        row = (
            await session.execute(
                select(Event.storyline_id, Event.storyline_detached).where(
                    Event.id == earlier_id, Event.guild_id == new.guild_id
                )
            )
        ).first()
        if row is None:  # merged away or deleted since it was indexed
            index.remove(earlier_id)
            return None
        storyline_id, detached = row
        if detached:
            # An admin said this event is not part of a storyline; it does not start one.
            return None
        if storyline_id is None:
            storyline_id = (
                await session.execute(
                    sa_insert(Storyline)
                    .values(
                        guild_id=new.guild_id,
                        title="",
                        title_edited=False,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(Storyline.id)
                )
            ).scalar_one()
            await session.execute(
                update(Event).where(Event.id == earlier_id).values(storyline_id=storyline_id)
            )
            log.info(
                "storyline %d started by events %d and %d",
                storyline_id,
                earlier_id,
                new.event_id,
                extra={"guild": new.guild_id},
            )
        index.set_storyline([earlier_id], storyline_id)
        await session.execute(
            update(Event).where(Event.id == new.event_id).values(storyline_id=storyline_id)
        )
        return int(storyline_id)

    async def _retitle(
        self, session: AsyncSession, index: StorylineIndex, storyline_id: int, now: datetime
    ) -> None:
        members = (
            await session.scalars(select(Event.id).where(Event.storyline_id == storyline_id))
        ).all()
        title = index.title_for(members) or "Untitled storyline"
        await session.execute(
            update(Storyline)
            .where(Storyline.id == storyline_id, Storyline.title_edited.is_(False))
            .values(title=title[:300], updated_at=now)
        )
        await session.execute(
            update(Storyline)
            .where(Storyline.id == storyline_id, Storyline.title_edited.is_(True))
            .values(updated_at=now)
        )


def _text(title: str, summary: str | None) -> str:
    title = (title or "").strip()
    summary = (summary or "").strip()
    if not summary:
        return title
    if not title:
        return summary
    return f"{title}. {summary}" if title[-1:] not in ".!?" else f"{title} {summary}"


async def write_briefs(session: AsyncSession, joined: Iterable[tuple[int, int]]) -> int:
    """For each (entry id, event id) that joined an existing event, store what it adds.

    An entry's brief is computed against the entries of its event with lower ids (the
    sources before it). Returns how many entries got a non-empty brief. The caller commits.
    """
    pairs = sorted(set(joined))
    if not pairs:
        return 0
    event_ids = sorted({event_id for _, event_id in pairs})
    texts: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for start in range(0, len(event_ids), 500):
        rows = await session.execute(
            select(Entry.event_id, Entry.id, Entry.title, Entry.summary)
            .where(Entry.event_id.in_(event_ids[start : start + 500]))
            .order_by(Entry.id)
        )
        for event_id, entry_id, title, summary in rows.all():
            texts[event_id].append((entry_id, _text(title, summary)))
    values = []
    found = 0
    for entry_id, event_id in pairs:
        sources = texts.get(event_id, [])
        own = next((t for i, t in sources if i == entry_id), None)
        earlier = [t for i, t in sources if i < entry_id]
        if own is None or not earlier:
            continue
        brief = source_brief(own, earlier) or ""
        found += bool(brief)
        values.append({"id": entry_id, "brief": brief})
    if values:
        await session.execute(update(Entry), values)
    return found
