"""Storylines in the ingest transaction: place new events, name storylines, brief new sources.

The decision itself is :mod:`timeline.domain.storylines` (pure, no database). This module keeps one
:class:`~timeline.domain.storylines.StorylineIndex` per guild scope in memory, brings it up to date
from the database at the start of every round (events other pollers stored included), and
writes what the index decides in the same transaction as the entries and events.

One rule decides what the index holds, live and after a restart: the events whose date
(``events.occurred_at``) lies within the storyline window (plus `GRACE`) of the round's clock,
and the earlier events of a storyline still developing (one of its events that recent) within
the window of its latest event, each reduced to the subject of its first source (lowest entry
id). A process that reloads the index from
the database therefore places the next event exactly as one that never stopped.

The database is the authority on membership: an admin may have renamed, merged or detached
since the index was loaded, so the storyline of a matched event is read back from its row.

A poller also saves its indexes now and then (the snapshot, `storyline_snapshot`): a restart
loads them and reads only the events stored and the rows edited since, as the live process
would have at its next refresh, instead of re-reading and re-adding the whole window (half a
million events in a busy one). A snapshot is taken between transactions only, so it never
holds a placement that was rolled back; one that cannot be used (damaged, of another layout
or window, of another database) is logged and the window is read from the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np
from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy import insert as sa_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from timeline.domain.storylines import (
    SUBJECT_VERSION,
    WINDOW,
    StorylineIndex,
    Subject,
    decode_subject,
    encode_subject,
    source_brief,
    subject,
)
from timeline.storage.bulk import paused_gc
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Event, Storyline
from timeline.storage.snapshot import read_arrays, snapshot_file, write_arrays

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
    # The entry that created it (its first source): its subject is stored with it.
    entry_id: int | None = None


# Stored subjects written back per statement (a first load after the upgrade writes many).
_WRITE_CHUNK = 5000

# The snapshot of the indexes a restart loads instead of reading every event of the window
# (`StorylineCache.snapshot`): written at most this often (by the round's clock), and its
# layout's version (bump when `StorylineIndex.state` changes what it holds).
SNAPSHOT_EVERY = timedelta(minutes=10)
SNAPSHOT_FORMAT = 1


class StorylineCache:
    """The per-guild storyline indexes of one process, refreshed from the database.

    Between refreshes the index is trusted for membership (no query per event); what admins
    changed since the last refresh (rename, merge, split, detach: rows whose ``updated_at``
    moved) is read back at the next refresh, and the earlier events a batch joins are checked
    against the database in one query before anything is written.
    """

    def __init__(self, window: timedelta = WINDOW, snapshot: Path | None = None) -> None:
        self.window = window
        self.indexes: dict[int, StorylineIndex] = {}
        # Events an admin took out of their storyline: they neither join nor start one.
        self.detached: set[int] = set()
        self._seen: datetime | None = None
        self._seen_id = 0
        self._synced: datetime | None = None
        # Where the indexes are saved (`save_state`) and loaded from at a start (None: never).
        self.snapshot = snapshot
        self._saved: datetime | None = None  # the round clock of the last snapshot
        # How the indexes were last loaded at a start: "snapshot" or "database" ("": not yet).
        self.loaded = ""
        # A start's snapshot being read and built in a thread (`load_in_background`).
        self._pending: asyncio.Future[_Built | None] | None = None

    def index(self, guild_id: int) -> StorylineIndex:
        """The index of one guild scope (created empty)."""
        index = self.indexes.get(guild_id)
        if index is None:
            index = self.indexes[guild_id] = StorylineIndex(self.window)
        return index

    def drop(self) -> None:
        """Forget everything (after a failed transaction); the next refresh reloads."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self.indexes.clear()
        self.detached.clear()
        self._seen = None
        self._seen_id = 0
        self._synced = None

    async def refresh(self, session: AsyncSession, now: datetime) -> int:
        """Add the events stored since the last refresh (by anyone); prune; return how many.

        Events are read in (created_at, id) order, so a reload adds them in the order the live
        process did. Each is reduced to the subject of its first source (lowest entry id): the
        one stored with that entry when it created the event, else computed from its text (and
        stored, so the next start reads it; the text never changes, so neither does it).

        A first refresh starts from the snapshot, if there is a usable one (`load_state`): the
        indexes as a live process held them then, so only what was stored and edited since is
        read, as by a live process.
        """
        if self._seen is None:
            self.loaded = "database"
            pending, self._pending = self._pending, None
            if self.snapshot is not None and await self.load_state(session, pending):
                self.loaded = "snapshot"
        cutoff = now - self.window - GRACE
        first_entry = (
            select(func.min(Entry.id))
            .where(Entry.event_id == Event.id)
            .correlate(Event)
            .scalar_subquery()
        )
        query = (
            select(
                Event.id,
                Event.guild_id,
                Event.occurred_at,
                Event.storyline_id,
                Event.storyline_detached,
                Event.created_at,
                Entry.id,
                Entry.subject,
                Entry.title,
                Entry.summary,
            )
            .join(Entry, Entry.id == first_entry)
            .order_by(Event.created_at, Event.id)
        )
        if self._seen is None:
            # A first load also takes the earlier events of the storylines still developing
            # (an event within the window): the live index kept those within the window of
            # their storyline's latest event, and `prune` below keeps exactly those.
            recent = aliased(Event)
            developing = select(recent.storyline_id).where(
                recent.occurred_at >= cutoff, recent.storyline_id.is_not(None)
            )
            query = query.where(
                (Event.occurred_at >= cutoff)
                | ((Event.occurred_at >= cutoff - self.window) & Event.storyline_id.in_(developing))
            )
        else:
            # Events stored since, as far back as a developing storyline keeps its events:
            # `prune` below then drops those the live index would have dropped by now. (Only
            # those within the window of now were too few when the last refresh is long ago,
            # a start from an old snapshot: a live process kept an earlier event of a
            # storyline that went on developing, the start did not read it back.)
            # (A range of `ix_events_created`, not a scan of the window: `>=` leads.)
            query = query.where(
                Event.created_at >= self._seen,
                (Event.created_at > self._seen) | (Event.id > self._seen_id),
                Event.occurred_at >= cutoff - self.window,
            )
        synced_from = self._synced
        # Rows edited from now on are read at the next refresh (a little overlap is harmless).
        self._synced = await session.scalar(select(func.max(Event.updated_at))) or now
        added = 0
        computed: list[dict[str, object]] = []
        rows = await session.stream(query.execution_options(yield_per=1000))
        # A batch per await, not a row: a first load reads hundreds of thousands of rows
        # (without the cycle collector traversing them as they are built: see `paused_gc`).
        with paused_gc() if synced_from is None else nullcontext():
            async for batch in rows.partitions():
                for row in batch:
                    event_id, guild_id, at, storyline_id, detached, created = row[:6]
                    self._seen, self._seen_id = created, event_id
                    index = self.index(guild_id)
                    if detached:
                        self.detached.add(event_id)
                    if event_id in index:
                        continue
                    index.add(event_id, at, _subject_of(row[6:], computed), storyline_id)
                    added += 1
        await _store_subjects(session, computed)
        if synced_from is not None:
            await self._sync_edits(session, synced_from, cutoff)
        for index in self.indexes.values():
            index.prune(now - GRACE)
        return added

    def load_in_background(self) -> bool:
        """At a start, if there is a snapshot: read and build its indexes in a thread, so the
        first round need not wait for them (half a million events take seconds). Whatever
        uses the indexes first calls `ready`, which takes them (or reads the database, as a
        start without a snapshot does). False (nothing started): no snapshot file."""
        if self.snapshot is None or self._seen is not None or self._pending is not None:
            return False
        if not self.snapshot.exists():
            return False
        self._pending = asyncio.ensure_future(asyncio.to_thread(_build, self.snapshot, self.window))
        return True

    async def ready(self, session: AsyncSession, now: datetime) -> None:
        """Bring the indexes up to date if this process has not yet (its first refresh runs
        here when `load_in_background` deferred it): before placing an event, or moving one."""
        if self._synced is None:
            await self.refresh(session, now)

    # --- the snapshot: the indexes saved, so a restart does not re-add the whole window ---

    def capture(self, now: datetime) -> dict[str, np.ndarray] | None:
        """The indexes as arrays for `save_state`, if a snapshot is due (None: not due, or
        nothing loaded). Call it only between transactions: the indexes must hold what the
        database holds up to the last refresh (no placement of a transaction still open:
        its events may yet be rolled back)."""
        if self.snapshot is None or self._seen is None or self._synced is None:
            return None
        if self._saved is not None and self._saved <= now < self._saved + SNAPSHOT_EVERY:
            return None
        self._saved = now
        header = {
            "format": SNAPSHOT_FORMAT,
            "subject_version": SUBJECT_VERSION,
            "window_s": self.window.total_seconds(),
            "seen": self._seen.isoformat(),
            "seen_id": self._seen_id,
            "synced": self._synced.isoformat(),
            "saved": now.isoformat(),
            "guilds": list(self.indexes),
        }
        arrays = {"detached": np.array(sorted(self.detached), dtype=np.int64)}
        try:
            for guild_id, index in self.indexes.items():
                arrays.update({f"g{guild_id}.{k}": v for k, v in index.state().items()})
        except ValueError as exc:
            log.warning("storyline snapshot not taken: %s", exc)
            return None
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        return arrays

    async def save_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Write a `capture` to the snapshot file (replaced whole: a crash leaves the old one)."""
        assert self.snapshot is not None
        path = self.snapshot
        try:
            await asyncio.to_thread(write_arrays, path, arrays)
        except OSError as exc:
            log.warning("could not write the storyline snapshot %s: %s", path, exc)
        else:
            log.debug("storyline snapshot written to %s", path)

    async def load_state(
        self, session: AsyncSession, pending: asyncio.Future[_Built | None] | None = None
    ) -> bool:
        """Start from the snapshot file (`pending`: as `load_in_background` is building it);
        False (and nothing loaded) if there is none or it cannot be used: unreadable, of
        another layout, subject version or window, or not of this database (its last event
        read is not there as it was)."""
        assert self.snapshot is not None
        path = self.snapshot
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(_build, path, self.window))
        built = await pending
        if built is None:
            return False
        stored = await session.scalar(select(Event.created_at).where(Event.id == built.seen_id))
        if stored != built.seen:
            log.warning(
                "storyline snapshot %s is not of this database (event %d is not as it was):"
                " loading from the database",
                path,
                built.seen_id,
            )
            return False
        self.indexes, self.detached = built.indexes, built.detached
        self._seen, self._seen_id = built.seen, built.seen_id
        self._synced, self._saved = built.synced, built.saved
        log.info(
            "storyline indexes loaded from %s (%d events, to event %d)",
            path,
            sum(len(i) for i in built.indexes.values()),
            built.seen_id,
        )
        return True

    async def _sync_edits(self, session: AsyncSession, since: datetime, cutoff: datetime) -> None:
        """Apply the changes made to indexed events since `since` (admins, other pollers):
        their storylines, and their dates moved earlier by an earlier source (as ingest moves
        them in the index it holds; a start from a snapshot saved before learns them here)."""
        rows = await session.execute(
            select(
                Event.id,
                Event.guild_id,
                Event.storyline_id,
                Event.storyline_detached,
                Event.occurred_at,
            ).where(Event.updated_at >= since, Event.occurred_at >= cutoff)
        )
        for event_id, guild_id, storyline_id, detached, occurred_at in rows.all():
            index = self.indexes.get(guild_id)
            if detached:
                self.detached.add(event_id)
            else:
                self.detached.discard(event_id)
            if index is not None and event_id in index:
                if index.storyline_of(event_id) != storyline_id:
                    index.set_storyline([event_id], storyline_id)
                index.move_earlier(event_id, occurred_at)

    async def place(  # noqa: C901 (the placement steps in order, in one transaction)
        self,
        session: AsyncSession,
        events: Sequence[NewEvent],
        *,
        now: datetime,
        subjects: dict[int, str] | None = None,
    ) -> dict[int, int]:
        """Put each new event in the storyline of the earlier event it continues, if any.

        Decided in memory first, event by event (each sees the ones before it), then written
        in a few statements. Returns {event id: storyline id} for the events placed. The
        caller commits.

        Each event's subject is stored with the entry that created it (`NewEvent.entry_id`):
        here, or, when the caller passes `subjects`, put there ({entry id: stored form}) for
        the caller to write with its own update of those entries (one statement less).
        """
        await self.ready(session, now)
        cutoff = now - self.window - GRACE
        batch = {new.event_id for new in events}
        # Provisional (negative) ids for storylines this batch starts, until they are inserted.
        provisional = 0
        started: dict[int, tuple[int, int]] = {}  # provisional id -> (guild, first event)
        joins: list[tuple[NewEvent, int, int]] = []  # (event, earlier event, storyline id)
        before: dict[int, int | None] = {}  # earlier events outside the batch: index's view
        stored: dict[int, str] = {} if subjects is None else subjects  # for a restart
        for new in events:
            if new.at < cutoff:
                # Outside the window of now: the index would not hold it after a reload either.
                continue
            index = self.index(new.guild_id)
            subj = subject(new.title, new.summary)
            if new.entry_id is not None and (text := encode_subject(subj)) is not None:
                stored[new.entry_id] = text
            match = index.find(subj, new.at, exclude=new.event_id)
            storyline_id: int | None = None
            if match is not None and match.event_id not in self.detached:
                earlier = match.event_id
                if earlier not in batch:
                    before.setdefault(earlier, index.storyline_of(earlier))
                storyline_id = index.storyline_of(earlier)
                if storyline_id is None:
                    provisional -= 1
                    storyline_id = provisional
                    started[provisional] = (new.guild_id, earlier)
                    index.set_storyline([earlier], storyline_id)
                joins.append((new, earlier, storyline_id))
            index.add(new.event_id, new.at, subj, storyline_id)
        if subjects is None:
            await _store_subjects(session, [{"id": e, "subject": t} for e, t in stored.items()])
        if not joins:
            return {}
        stale = await self._stale(session, before)
        if stale:
            # An admin changed these since the last refresh: the joins that relied on them
            # wait for the next round's view (the events stay without a storyline for now).
            log.info("storyline placement skipped for %d changed events", len(stale))
            for new, earlier, _ in joins:
                if earlier in stale:
                    self.index(new.guild_id).set_storyline([new.event_id], None)
            joins = [j for j in joins if j[1] not in stale]
        used = {sid for _, _, sid in joins}
        for prov, (guild_id, first) in started.items():
            if prov not in used:
                self.index(guild_id).set_storyline([first], None)
        real: dict[int, int] = {}
        for prov in sorted(used & started.keys(), reverse=True):
            real[prov] = (
                await session.execute(
                    sa_insert(Storyline)
                    .values(
                        guild_id=started[prov][0],
                        title="",
                        title_edited=False,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(Storyline.id)
                )
            ).scalar_one()
        placed: dict[int, int] = {}
        rows: dict[int, int] = {}
        for new, earlier, sid in joins:
            sid = real.get(sid, sid)
            placed[new.event_id] = sid
            rows[new.event_id] = sid
            rows.setdefault(earlier, sid)
        for prov, sid in real.items():
            guild_id, first = started[prov]
            members = [e for e, s in rows.items() if s == sid]
            self.index(guild_id).set_storyline(members, sid)
            log.info(
                "storyline %d started by events %d and %d",
                sid,
                first,
                min(e for e in members if e != first),
                extra={"guild_id": guild_id},
            )
        if not rows:
            return {}
        await session.execute(
            update(Event),
            [{"id": e, "storyline_id": s, "updated_at": now} for e, s in sorted(rows.items())],
        )
        await self._retitle(session, {s for s in rows.values()}, now, events)
        return placed

    async def _stale(self, session: AsyncSession, before: dict[int, int | None]) -> set[int]:
        """The earlier events whose storyline in the database is not what the index says."""
        if not before:
            return set()
        current = {
            event_id: (sid, detached)
            for event_id, sid, detached in (
                await session.execute(
                    select(Event.id, Event.storyline_id, Event.storyline_detached).where(
                        Event.id.in_(list(before))
                    )
                )
            ).all()
        }
        return {
            e
            for e, sid in before.items()
            if e not in current or current[e][1] or current[e][0] != sid
        }

    async def _retitle(
        self,
        session: AsyncSession,
        storyline_ids: set[int],
        now: datetime,
        events: Sequence[NewEvent],
    ) -> None:
        """Name the storylines this batch touched after the terms most of their events share."""
        guilds = {new.guild_id for new in events}
        values = []
        for sid in sorted(storyline_ids):
            for guild_id in guilds:
                members = self.index(guild_id).members_of(sid)
                if members:
                    title = self.index(guild_id).title_for(members) or "Untitled storyline"
                    values.append({"sid": sid, "title": title[:300]})
                    break
        if not values:
            return
        table = cast(Table, Storyline.__table__)
        await session.execute(
            table.update()
            .where(table.c.id == bindparam("sid"), table.c.title_edited.is_(False))
            .values(title=bindparam("title"), updated_at=now),
            values,
        )
        await session.execute(
            update(Storyline)
            .where(Storyline.id.in_(sorted(storyline_ids)), Storyline.title_edited.is_(True))
            .values(updated_at=now)
        )


def snapshot_path(setting: str, db: Database) -> Path | None:
    """Where the storyline snapshot goes, from the `storyline_snapshot` setting: "auto" is
    beside a SQLite database file (none for another database), "" is none."""
    return snapshot_file(setting, db, "storylines.npz")


@dataclass(frozen=True, slots=True)
class _Built:
    """A snapshot's indexes, built, and how far they are up to date."""

    indexes: dict[int, StorylineIndex]
    detached: set[int]
    seen: datetime
    seen_id: int
    synced: datetime
    saved: datetime


def _build(path: Path, window: timedelta) -> _Built | None:
    """Read the snapshot file and build its indexes (in a thread: no database, no shared
    state); None, logged, if there is none or it is damaged or of another version or window."""
    try:
        arrays = read_arrays(path)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a cache: whatever is wrong with the file, the database is read
        log.warning("storyline snapshot %s not read (%s): loading from the database", path, exc)
        return None
    try:
        header = json.loads(arrays["header"].tobytes())
        if (header["format"], header["subject_version"], header["window_s"]) != (
            SNAPSHOT_FORMAT,
            SUBJECT_VERSION,
            window.total_seconds(),
        ):
            log.info("storyline snapshot %s is of another version or window: not used", path)
            return None
        indexes = {}
        # (Half a million members and their dates: without the cycle collector walking them.)
        with paused_gc():
            for guild_id in header["guilds"]:
                prefix = f"g{int(guild_id)}."
                state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
                indexes[int(guild_id)] = StorylineIndex.from_state(window, state)
        return _Built(
            indexes,
            set(arrays["detached"].astype(np.int64).tolist()),
            datetime.fromisoformat(header["seen"]),
            int(header["seen_id"]),
            datetime.fromisoformat(header["synced"]),
            datetime.fromisoformat(header["saved"]),
        )
    except Exception as exc:  # (as above: any damage means the database is read)
        log.warning("storyline snapshot %s is damaged (%s): loading from the database", path, exc)
        return None


def _subject_of(row: Sequence[object], computed: list[dict[str, object]]) -> Subject:
    """The subject of a first source from its row (entry id, stored subject, title, summary):
    the stored one, else computed from the text and queued in `computed` to be stored."""
    entry_id, stored, title, summary = row
    got = decode_subject(cast(str | None, stored))
    if got is None:
        got = subject(cast(str, title), cast(str | None, summary) or "")
        if (text := encode_subject(got)) is not None:
            computed.append({"id": entry_id, "subject": text})
    return got


async def _store_subjects(session: AsyncSession, values: list[dict[str, object]]) -> None:
    """Store entries' subjects ({"id", "subject"}), in entry id order, a chunk a statement."""
    values.sort(key=lambda v: cast(int, v["id"]))
    for start in range(0, len(values), _WRITE_CHUNK):
        await session.execute(update(Entry), values[start : start + _WRITE_CHUNK])


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
