"""The clustering indexes saved now and then, so a restart loads them instead of computing
the features of every source of the window again.

A poller's clustering indexes (:class:`~timeline.domain.clustering.EventIndex`, one per guild
scope) hold the sources of the last 72 hours; a start used to rebuild them from the database,
computing each source's words, names and shingles (about 12 s for 50,000 sources). The poller
now saves them (`[polling] event_index_snapshot`, every `SNAPSHOT_EVERY` of its round clock,
between transactions only) with what says how far they are up to date: the newest
``first_seen_at`` it read (its watermark) and the entries it holds by id (stored by this
process or read within a lease of the watermark). A start loads them and then reads what was
stored since, exactly as the saved process would have at its next round; so what ingest
clusters does not change with a restart, to the cached IDF value (the live index's state is
what is saved, not a rebuild of it).

A snapshot that cannot be used (missing, damaged, of another layout, hash or window, or of
another database: its newest entry is not there as it was) is logged and the window is read
from the database, as before snapshots.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.clustering import HASH_VERSION, EventIndex
from timeline.storage.models import Entry
from timeline.storage.snapshot import read_arrays, write_arrays

log = logging.getLogger(__name__)

# Written at most this often (by the round's clock); the layout's version (bump when
# `EventIndex.state` changes what it holds).
SNAPSHOT_EVERY = timedelta(minutes=10)
SNAPSHOT_FORMAT = 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass
class Loaded:
    """What a snapshot gives a poller: its indexes and how far they are up to date."""

    indexes: dict[int, EventIndex]
    # The newest first_seen_at read from the database (the next read's watermark).
    seen: datetime | None
    # The entries in the indexes that a read from a lease before the watermark must skip.
    known: dict[int, datetime]


class EventSnapshot:
    """Saves and loads one poller's clustering indexes (`path`; None: never)."""

    def __init__(self, path: Path | None, window: timedelta) -> None:
        self.path = path
        self.window = window
        self._saved: datetime | None = None  # the round clock of the last snapshot
        # How the indexes were loaded at the start: "snapshot" or "database" ("": not yet).
        self.loaded = ""

    def due(self, now: datetime) -> bool:
        """Whether a snapshot is to be taken at this round's start."""
        if self.path is None:
            return False
        return self._saved is None or not self._saved <= now < self._saved + SNAPSHOT_EVERY

    async def capture(
        self,
        session: AsyncSession,
        now: datetime,
        indexes: dict[int, EventIndex],
        seen: datetime | None,
        known: dict[int, datetime],
    ) -> dict[str, np.ndarray]:
        """The indexes as arrays for `save`. Call it only between ingest transactions: the
        indexes must hold nothing that may yet be rolled back."""
        self._saved = now
        # The newest entry, as it is now: a start checks that it is still there as it was.
        newest = (
            await session.execute(
                select(Entry.id, Entry.first_seen_at).order_by(Entry.id.desc()).limit(1)
            )
        ).first()
        header = {
            "format": SNAPSHOT_FORMAT,
            "hash_version": HASH_VERSION,
            "window_s": self.window.total_seconds(),
            "seen": None if seen is None else seen.isoformat(),
            "newest": None if newest is None else [newest[0], newest[1].isoformat()],
            "saved": now.isoformat(),
            "guilds": list(indexes),
        }
        arrays = {
            "known": np.array(
                [(e, _micros(at)) for e, at in known.items()], dtype=np.int64
            ).reshape(-1, 2),
        }
        for guild_id, index in indexes.items():
            arrays.update({f"g{guild_id}.{k}": v for k, v in index.state().items()})
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        return arrays

    async def save(self, arrays: dict[str, np.ndarray]) -> None:
        """Write a `capture` to the snapshot file (replaced whole: a crash leaves the old one)."""
        assert self.path is not None
        try:
            await asyncio.to_thread(write_arrays, self.path, arrays)
        except OSError as exc:
            log.warning("could not write the event index snapshot %s: %s", self.path, exc)
        else:
            log.debug("event index snapshot written to %s", self.path)

    async def load(self, session: AsyncSession, now: datetime) -> Loaded | None:
        """The indexes of the snapshot file; None (logged) if there is none or it cannot be
        used, and the caller reads the window from the database.

        After a load the next snapshot is due `SNAPSHOT_EVERY` after `now`, not at once: a
        start from a snapshot is not slowed by taking the next one (one read from the
        database is, so the next start is fast).
        """
        self.loaded = "database"
        path = self.path
        if path is None:
            return None
        try:
            arrays = await asyncio.to_thread(read_arrays, path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # a cache: whatever is wrong with the file, the database is read
            log.warning(
                "event index snapshot %s not read (%s): loading from the database", path, exc
            )
            return None
        try:
            header = json.loads(arrays["header"].tobytes())
            if (header["format"], header["hash_version"], header["window_s"]) != (
                SNAPSHOT_FORMAT,
                HASH_VERSION,
                self.window.total_seconds(),
            ):
                log.info("event index snapshot %s is of another version or window: not used", path)
                return None
            seen = None if header["seen"] is None else datetime.fromisoformat(header["seen"])
            newest, saved = header["newest"], str(header["saved"])
            indexes = {}
            for guild_id in header["guilds"]:
                prefix = f"g{int(guild_id)}."
                state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
                indexes[int(guild_id)] = EventIndex.from_state(self.window, state)
            known = {int(e): _at(int(at)) for e, at in arrays["known"].reshape(-1, 2).tolist()}
        except Exception as exc:  # (as above: any damage means the database is read)
            log.warning(
                "event index snapshot %s is damaged (%s): loading from the database", path, exc
            )
            return None
        if newest is not None:
            entry_id, first_seen = int(newest[0]), datetime.fromisoformat(newest[1])
            stored = await session.scalar(select(Entry.first_seen_at).where(Entry.id == entry_id))
            if stored != first_seen:
                log.warning(
                    "event index snapshot %s is not of this database (entry %d is not as it"
                    " was): loading from the database",
                    path,
                    entry_id,
                )
                return None
        self._saved = now
        self.loaded = "snapshot"
        log.info(
            "event indexes loaded from %s (%d sources, saved %s, watermark %s)",
            path,
            sum(len(i) for i in indexes.values()),
            saved,
            seen,
        )
        return Loaded(indexes, seen, known)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def _at(micros: int) -> datetime:
    return _EPOCH + timedelta(0, 0, micros)
