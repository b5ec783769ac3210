"""The storyline snapshot: a restart loads the indexes a poller saved, then reads what was
stored and edited since, and holds exactly what a reload of the whole window from the
database holds. A real SQLite file at head; damaged, foreign and outdated snapshots are not
used (logged), and a snapshot is never taken while a transaction may still roll back.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from shutil import copy

import pytest
from sqlalchemy import distinct, func, select, update

from tests.domain.storylines.labelled import load
from tests.domain.storylines.test_postings import same_index
from tests.storage.test_storyline_subjects import add_event
from timeline.app.config import PollingSettings
from timeline.domain.storylines import subject
from timeline.storage import storylines as storage
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Entry, Event
from timeline.storage.storylines import NewEvent, StorylineCache, snapshot_path
from timeline.usecases.polling import PollStore

EVENTS = load("dev")
# The labelled events six hours apart (their own dates span months: more than a window).
T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = T0 + timedelta(hours=6 * len(EVENTS) + 1)


HOME = Path("~").expanduser()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def spoil(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 300)
    elif how == "cut":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()


def at(i: int) -> datetime:
    return T0 + timedelta(hours=6 * i)


async def fill(db: Database, cache: StorylineCache, events: range) -> None:
    """Store these labelled events (one entry each) and place them with `cache`, as ingest
    does, a transaction each (so storylines start and grow, and are stored)."""
    for i in events:
        e = EVENTS[i]
        (entry,) = await add_event(db, (e.title, e.summary), at=at(i))
        async with db.session() as s:
            event_id = await s.scalar(select(Entry.event_id).where(Entry.id == entry))
            assert event_id is not None
            await cache.place(
                s, [NewEvent(event_id, 0, at(i), e.title, e.summary, entry)], now=at(i)
            )


async def started(db: Database, path: Path | None, now: datetime = NOW) -> StorylineCache:
    """The cache of a freshly started process after its first refresh."""
    cache = StorylineCache(snapshot=path)
    async with db.session() as s:
        await cache.refresh(s, now)
    return cache


def same_cache(a: StorylineCache, b: StorylineCache) -> None:
    assert a.indexes.keys() == b.indexes.keys()
    for guild_id in a.indexes:
        same_index(a.indexes[guild_id], b.indexes[guild_id])
    assert a.detached == b.detached
    assert (a._seen, a._seen_id) == (b._seen, b._seen_id)


async def save(cache: StorylineCache, now: datetime = NOW) -> None:
    state = cache.capture(now)
    assert state is not None
    await cache.save_state(state)


async def test_a_start_from_the_snapshot_holds_what_a_reload_holds(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "timeline.db-storylines.npz"
    assert snapshot_path("auto", db) == path
    live = StorylineCache(snapshot=path)
    async with db.session() as s:
        await live.refresh(s, T0)
    await fill(db, live, range(40))
    async with db.session() as s:
        await live.refresh(s, at(40))
    await save(live, at(40))
    assert "timeline.db-storylines.npz" in files(tmp_path)
    assert not [f for f in files(tmp_path) if f.endswith(".tmp")]
    # After the snapshot: more events placed (by the live process, or another poller), and
    # an admin's change to an indexed event.
    await fill(db, live, range(40, len(EVENTS)))
    async with db.session() as s:
        await s.execute(
            update(Event).where(Event.id == 5).values(storyline_detached=True, updated_at=NOW)
        )
        # And an earlier source joined an indexed event: ingest moves its date earlier.
        await s.execute(
            update(Event)
            .where(Event.id == 30)
            .values(occurred_at=at(29) - timedelta(hours=5), updated_at=NOW)  # (event 30: the 30th)
        )
        stories = await s.scalar(select(func.count(distinct(Event.storyline_id))))
    assert stories and stories >= 5
    restarted = await started(db, path)
    assert restarted._saved == at(40)  # loaded, not rebuilt: the next one is due from then
    reloaded = await started(db, None)
    same_cache(restarted, reloaded)
    assert 5 in restarted.detached
    assert restarted.index(0)._members[30].at == at(29) - timedelta(hours=5)
    assert len(restarted.index(0)) == len(EVENTS)
    # And it places the next events as the reloaded one does.
    for e in load("test")[:20]:
        subj = subject(e.title, e.summary)
        assert restarted.index(0).find(subj, NOW) == reloaded.index(0).find(subj, NOW)


@pytest.mark.parametrize("damage", ["garbage", "cut", "empty", "another window", "foreign"])
async def test_a_snapshot_that_cannot_be_used_is_logged_and_the_database_read(
    db: Database, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "timeline.db-storylines.npz"
    cache = StorylineCache()
    await fill(db, cache, range(30))
    await save(await started(db, path))
    if damage in ("garbage", "cut", "empty"):
        spoil(path, damage)
    elif damage == "another window":
        cache = StorylineCache(window=timedelta(days=29), snapshot=path)
        async with db.session() as s:
            await cache.refresh(s, NOW)
        await save(cache)
    else:
        # The snapshot of another database beside this one (a copy of a file, a restored
        # backup): its last event is not this database's.
        other_path = tmp_path / "other.db"
        await upgrade_async(f"sqlite:///{other_path}")
        other = Database(f"sqlite:///{other_path}")
        try:
            await fill(other, StorylineCache(), range(5, 45))
            other_cache = await started(other, tmp_path / "other.npz")
            await save(other_cache)
        finally:
            await other.dispose()
        copy(tmp_path / "other.npz", path)
    caplog.set_level(logging.INFO, logger=storage.__name__)
    got = await started(db, path)
    same_cache(got, await started(db, None))
    assert "storyline snapshot" in caplog.text
    assert "loaded from" not in caplog.text


async def test_snapshots_are_taken_every_so_often_and_never_mid_transaction(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'timeline.db'}"
    await upgrade_async(url)
    db = Database(url)
    try:
        await fill(db, StorylineCache(), range(10))
        store = PollStore(db, PollingSettings())
        path = store.storylines.snapshot
        assert path == tmp_path / "timeline.db-storylines.npz"
        # A transaction of this process is open (its placements may yet be rolled back).
        store._grouping = True
        await store.begin_round(NOW)
        assert path.name not in files(tmp_path)
        store._grouping = False
        await store.begin_round(NOW)
        assert path.name in files(tmp_path)
        spoil(path, "remove")
        await store.begin_round(NOW + storage.SNAPSHOT_EVERY / 2)
        assert path.name not in files(tmp_path)  # not due yet
        await store.begin_round(NOW + storage.SNAPSHOT_EVERY)
        assert path.name in files(tmp_path)
        none = PollStore(db, replace(PollingSettings(), storyline_snapshot=""))
        assert none.storylines.snapshot is None
    finally:
        await db.dispose()
    assert snapshot_path("auto", Database("postgresql://u@127.0.0.1/test")) is None
    assert snapshot_path("~/s.npz", db) == HOME / "s.npz"


async def test_a_start_with_a_snapshot_builds_it_while_the_first_round_runs(
    tmp_path: Path,
) -> None:
    """The first round need not wait for half a million events: `begin_round` returns with
    the snapshot still being built in a thread, and whatever uses the indexes first waits
    for it (`ready`), then holds what a reload from the database holds."""
    url = f"sqlite:///{tmp_path / 'timeline.db'}"
    await upgrade_async(url)
    db = Database(url)
    try:
        live = StorylineCache(snapshot=tmp_path / "timeline.db-storylines.npz")
        async with db.session() as s:
            await live.refresh(s, T0)
        await fill(db, live, range(40))
        async with db.session() as s:
            await live.refresh(s, at(40))
        await save(live, at(40))
        await fill(db, live, range(40, len(EVENTS)))  # stored after the snapshot
        store = PollStore(db, PollingSettings())
        await store.begin_round(NOW)
        assert store.storylines._pending is not None
        assert store.storylines.loaded == ""
        assert store.storylines.capture(NOW) is None  # nothing to save before it is loaded
        async with db.session() as s:
            await store.storylines.ready(s, NOW)
        assert store.storylines._pending is None
        assert store.storylines.loaded == "snapshot"
        same_cache(store.storylines, await started(db, None))
        # A failed transaction before it was ready forgets the build; the next round reads.
        other = PollStore(db, PollingSettings())
        await other.begin_round(NOW)
        assert other.storylines._pending is not None
        other._drop_event_indexes()
        assert other.storylines._pending is None
        await other.begin_round(NOW)
        async with db.session() as s:
            await other.storylines.ready(s, NOW)
        same_cache(other.storylines, store.storylines)
    finally:
        await db.dispose()
