"""The clustering indexes' snapshot: a poller saves them between transactions, a restart loads
them and reads only what was stored since, and clusters every later story as the process that
never stopped does. Real feeds over HTTP, the real poller, real SQLite files; damaged, foreign
and outdated snapshots are not used (logged), and none is taken mid-transaction.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from shutil import copy
from typing import Any
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import select

from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller
from tests.domain.clustering.labelled import load_pairs
from tests.domain.clustering.test_state import same_event_index
from tests.helpers import FeedServer
from tests.storage.test_storyline_snapshot import spoil as damaged
from timeline.app.config import PollingSettings
from timeline.domain.clustering import HASH_VERSION
from timeline.storage import event_snapshot
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Entry, Feed
from timeline.usecases.polling import PollStore

SETTINGS = PollingSettings(
    allow_private=("127.0.0.1",), timeout_seconds=5.0, jitter=0.0, alert_on_first_poll=True
)
NOW = datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
# Rounds further apart than a snapshot's interval: each round's start saves one.
ROUND = event_snapshot.SNAPSHOT_EVERY + timedelta(minutes=5)
ROUNDS = 5
OUTLETS = ("alpha", "bravo", "charlie")


def stories() -> list[dict[str, Any]]:
    """The labelled clustering pairs' stories (retellings, follow-ups, near copies, stories
    that only share words), dated within the clustering window of the rounds."""
    out = []
    for i, pair in enumerate(load_pairs()):
        # Each pair an hour apart from the next, its two stories as far apart as labelled.
        shift = NOW - timedelta(hours=30) + timedelta(minutes=7 * i) - pair["a"]["published"]
        for side in ("a", "b"):
            s = pair[side]
            out.append(
                {
                    "guid": f"p{i}{side}",
                    "title": s["title"],
                    "summary": s.get("summary", ""),
                    "link": s.get("link") or f"https://x.example/p{i}{side}",
                    "published": s["published"] + shift,
                }
            )
    return out


STORIES = stories()


def shown(round_no: int, outlet: int) -> list[dict[str, Any]]:
    """What one outlet's feed holds at a round: the `a` stories come first, the `b` ones
    (their retellings or look-alikes) in later rounds, spread over the outlets."""
    out = []
    for n, story in enumerate(STORIES):
        side_b = story["guid"].endswith("b")
        first = 1 + (n // 2) % 2 + (2 if side_b else 0)
        if n % len(OUTLETS) == outlet and first <= round_no:
            out.append(story)
    return out


def document(items: list[dict[str, Any]], outlet: str) -> bytes:
    body = "".join(
        f"<item><guid isPermaLink='false'>{s['guid']}</guid><title>{escape(s['title'])}</title>"
        f"<link>{escape(s['link'])}</link><description>{escape(s['summary'])}</description>"
        f"<pubDate>{format_datetime(s['published'])}</pubDate></item>"
        for s in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{outlet}</title><link>https://{outlet}.example/</link><description>d"
        f"</description>{body}</channel></rss>"
    ).encode()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    settings = FetchSettings(timeout_seconds=5.0, allow_private=SETTINGS.allow_private)
    async with Fetcher(settings) as f:
        yield f


async def new_db(path: Path) -> Database:
    url = f"sqlite:///{path}"
    await upgrade_async(url)
    db = Database(url)
    async with db.session() as s:
        for outlet in OUTLETS:
            s.add(Feed(name=outlet, url=f"http://127.0.0.1/{outlet}.xml"))
    return db


async def due(db: Database, server: FeedServer) -> None:
    async with db.session() as s:
        for f in (await s.scalars(select(Feed))).all():
            f.next_check_at = datetime(2000, 1, 1, tzinfo=UTC)
            f.url = server.url(f"/{f.name}.xml")


async def events_of(db: Database) -> list[list[str]]:
    """The events as the sorted guids of their sources."""
    async with db.session() as s:
        rows = (await s.execute(select(Entry.event_id, Entry.key))).all()
    by_event: dict[int, list[str]] = {}
    for event_id, key in rows:
        by_event.setdefault(event_id, []).append(key)
    return sorted(sorted(keys) for keys in by_event.values())


async def run(
    db: Database,
    server: FeedServer,
    fetcher: Fetcher,
    *,
    restart: bool,
    settings: PollingSettings = SETTINGS,
    spoil: Any = None,
) -> tuple[PollStore, list[str]]:
    """ROUNDS rounds; with `restart`, a new process before each round after the first (after
    `spoil(path)`, if given). Returns the last store, begun once more a round later, and how
    each restarted process loaded its indexes."""
    store = PollStore(db, settings)
    loads = []
    for round_no in range(1, ROUNDS + 1):
        for n, outlet in enumerate(OUTLETS):
            server.bodies[f"/{outlet}.xml"] = document(shown(round_no, n), outlet)
        await due(db, server)
        if restart and round_no > 1:
            if spoil is not None and store.event_snapshot.path is not None:
                spoil(store.event_snapshot.path)
            store = PollStore(db, settings)
        await Poller(store, fetcher, concurrency=2).run_round(NOW + ROUND * round_no)
        if restart and round_no > 1:
            loads.append(store.event_snapshot.loaded)
    await store.begin_round(NOW + ROUND * (ROUNDS + 1))
    return store, loads


def same_store(a: PollStore, b: PollStore) -> None:
    assert a.events.keys() == b.events.keys()
    for guild_id in a.events:
        # (A source read back from the database has its named days yet to compute, where
        # the live process computed them when it looked the story up.)
        same_event_index(a.events[guild_id], b.events[guild_id], exact=False)
    assert a._events_seen == b._events_seen
    assert a._known == b._known


async def test_a_restart_from_the_snapshot_clusters_as_the_live_process(
    tmp_path: Path, feed_server: FeedServer, fetcher: Fetcher
) -> None:
    live_db = await new_db(tmp_path / "live.db")
    restart_db = await new_db(tmp_path / "restart.db")
    try:
        live, _ = await run(live_db, feed_server, fetcher, restart=False)
        restarted, loads = await run(restart_db, feed_server, fetcher, restart=True)
        assert loads == ["snapshot"] * (ROUNDS - 1)
        assert restarted.event_snapshot.path == tmp_path / "restart.db-events.npz"
        assert not [name for name in files(tmp_path) if name.endswith(".tmp")]
        got = await events_of(live_db)
        # The stories cluster: some events have sources from several rounds and outlets.
        assert sum(len(keys) > 1 for keys in got) >= 20
        assert await events_of(restart_db) == got
        # And the indexes are the same, to the cached IDF values and the entries known.
        same_store(live, restarted)
        assert sum(len(i) for i in live.events.values()) == len(STORIES)
    finally:
        await live_db.dispose()
        await restart_db.dispose()


@pytest.mark.parametrize("damage", ["garbage", "cut", "empty", "removed", "foreign", "version"])
async def test_a_snapshot_that_cannot_be_used_is_logged_and_the_database_read(
    tmp_path: Path,
    feed_server: FeedServer,
    fetcher: Fetcher,
    damage: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live_db = await new_db(tmp_path / "live.db")
    restart_db = await new_db(tmp_path / "restart.db")
    foreign = tmp_path / "foreign.npz"
    if damage == "foreign":
        # The snapshot of another database (a copied file, a restored backup).
        other = await new_db(tmp_path / "other.db")
        try:
            other_store = PollStore(other, replace(SETTINGS, event_index_snapshot=str(foreign)))
            await due(other, feed_server)
            for n, outlet in enumerate(OUTLETS):
                feed_server.bodies[f"/{outlet}.xml"] = document(shown(ROUNDS, n)[1:], outlet)
            await Poller(other_store, fetcher).run_round(NOW)
            await other_store.begin_round(NOW + ROUND)
        finally:
            await other.dispose()

    def spoil(path: Path) -> None:
        if damage == "foreign":
            copy(foreign, path)
        else:
            damaged(path, damage)  # (garbage, cut, empty; anything else: removed)

    caplog.set_level(logging.INFO, logger=event_snapshot.__name__)
    try:
        if damage == "version":
            # A snapshot whose hashes are of another version is not used.
            with monkeypatch.context() as patched:
                patched.setattr(event_snapshot, "HASH_VERSION", HASH_VERSION + 1)
                await run(restart_db, feed_server, fetcher, restart=False)
            store = PollStore(restart_db, SETTINGS)
            await store.begin_round(NOW + ROUND * (ROUNDS + 1))
            assert store.event_snapshot.loaded == "database"
            assert "of another version or window" in caplog.text
            return
        await run(live_db, feed_server, fetcher, restart=False)
        _, loads = await run(restart_db, feed_server, fetcher, restart=True, spoil=spoil)
        assert loads == ["database"] * (ROUNDS - 1)
        if damage != "removed":
            assert "event index snapshot" in caplog.text
        assert "event indexes loaded from" not in caplog.text
        # Read from the database instead: the same events all the same.
        assert await events_of(restart_db) == await events_of(live_db)
    finally:
        await live_db.dispose()
        await restart_db.dispose()


async def test_snapshots_are_taken_every_so_often_and_never_mid_transaction(
    tmp_path: Path, feed_server: FeedServer, fetcher: Fetcher
) -> None:
    db = await new_db(tmp_path / "timeline.db")
    try:
        store = PollStore(db, SETTINGS)
        path = store.event_snapshot.path
        assert path == tmp_path / "timeline.db-events.npz"
        for n, outlet in enumerate(OUTLETS):
            feed_server.bodies[f"/{outlet}.xml"] = document(shown(2, n), outlet)
        await due(db, feed_server)
        # A transaction of this process is open (what it indexed may yet be rolled back).
        store._grouping = True
        await store.begin_round(NOW)
        assert not path.exists()
        store._grouping = False
        # A start that read the window from the database takes one at once (the next start
        # is then fast), before the round's stories.
        await Poller(store, fetcher).run_round(NOW)
        assert path.exists()
        path.unlink()
        await store.begin_round(NOW + event_snapshot.SNAPSHOT_EVERY / 2)
        assert not path.exists()  # not due yet
        await store.begin_round(NOW + event_snapshot.SNAPSHOT_EVERY)
        assert path.exists()
        # A start from an old snapshot does not take the next one at once (its first round
        # would wait for it), but a snapshot's interval later.
        written = path.read_bytes()
        later = NOW + 5 * event_snapshot.SNAPSHOT_EVERY
        restarted = PollStore(db, SETTINGS)
        await restarted.begin_round(later)
        assert restarted.event_snapshot.loaded == "snapshot"
        # (The second round's documents: every `a` story.)
        assert sum(map(len, restarted.events.values())) == len(STORIES) // 2
        await restarted.begin_round(later + event_snapshot.SNAPSHOT_EVERY / 2)
        assert path.read_bytes() == written
        await restarted.begin_round(later + event_snapshot.SNAPSHOT_EVERY)
        assert path.read_bytes() != written
        # After a transaction failed, the indexes are read from the database (the snapshot is
        # for a start).
        restarted._drop_event_indexes()
        await restarted.begin_round(later + 2 * event_snapshot.SNAPSHOT_EVERY)
        assert restarted.event_snapshot.loaded == "snapshot"  # (how the start loaded them)
        assert sum(map(len, restarted.events.values())) == len(STORIES) // 2
        none = PollStore(db, replace(SETTINGS, event_index_snapshot=""))
        assert none.event_snapshot.path is None
        await none.begin_round(NOW)
        assert none.event_snapshot.loaded == "database"
    finally:
        await db.dispose()
    pg = PollStore(Database("postgresql://u@127.0.0.1/test"), SETTINGS)
    assert pg.event_snapshot.path is None
