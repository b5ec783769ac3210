"""PostgreSQL as the coordination engine: feed leases, racing ingests, outbox NOTIFY.

In-process, against this module's own database: several `PollStore`s with different owners
stand for several poller processes (the subprocess version is test_cluster.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import func, select, text

from feeds.types import FeedItem, FetchResult, FetchState
from tests.helpers import wait_until
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Entry, Event, Feed, Watch
from timeline.storage.notify import OutboxListener, announce_outbox
from timeline.usecases.ingest import ingest, load_watch_set
from timeline.usecases.polling import PollStore

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SETTINGS = replace(PollingSettings(), lease_seconds=60.0, jitter=0.0)


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url)
    async with database.session() as session:
        await session.execute(
            text(
                "TRUNCATE feeds, events, entries, watches, aliases, alerts, fetch_results "
                "RESTART IDENTITY CASCADE"
            )
        )
    try:
        yield database
    finally:
        await database.dispose()


async def add_feeds(db: Database, n: int, due: datetime = T0) -> list[int]:
    async with db.session() as session:
        feeds = [
            Feed(name=f"feed {i}", url=f"https://f{i}.example/rss", next_check_at=due)
            for i in range(n)
        ]
        session.add_all(feeds)
        await session.flush()
        return [f.id for f in feeds]


async def test_concurrent_pollers_claim_disjoint_feeds(db: Database) -> None:
    ids = await add_feeds(db, 60)
    stores = [PollStore(db, SETTINGS, owner=f"poller-{n}") for n in range(4)]

    async def drain(store: PollStore) -> list[int]:
        got: list[int] = []
        while batch := await store.claim_due(T0, limit=5):
            got.extend(d.id for d in batch)
        return got

    claims = await asyncio.gather(*(drain(s) for s in stores))
    flat = [feed for claim in claims for feed in claim]
    assert sorted(flat) == sorted(ids)  # every due feed claimed, none twice
    async with db.session() as session:
        rows = (await session.execute(select(Feed.id, Feed.lease_owner))).all()
        owners = {feed_id: owner for feed_id, owner in rows}
    for store, claim in zip(stores, claims, strict=True):
        assert {owners[f] for f in claim} <= {store.owner}
        assert store.held == set(claim)


async def test_lease_of_a_dead_poller_expires_and_a_live_one_is_renewed(db: Database) -> None:
    (feed,) = await add_feeds(db, 1)
    short = replace(SETTINGS, lease_seconds=10.0)
    dead, alive, other = (PollStore(db, short, owner=o) for o in ("dead", "alive", "other"))

    assert [d.id for d in await dead.claim_due(T0)] == [feed]
    assert await other.claim_due(T0 + timedelta(seconds=9)) == []
    # The dead poller renews nothing: after the lease the feed is free again.
    (taken,) = await alive.claim_due(T0 + timedelta(seconds=11))
    # A live poller renews while its batch is in flight, so nobody takes the feed from it.
    assert await alive.renew_leases(T0 + timedelta(seconds=18)) == 1
    assert await other.claim_due(T0 + timedelta(seconds=25)) == []
    assert await dead.renew_leases(T0 + timedelta(seconds=25)) == 0  # not its lease any more

    # The late dead poller's record does not clear the live poller's lease.
    result = FetchResult(url="https://f0.example/rss", outcome="not_modified", state=FetchState(""))
    await dead.record(taken, result, now=T0 + timedelta(seconds=26))
    async with db.session() as session:
        row = await session.get(Feed, feed)
        assert row is not None and row.lease_owner == "alive"

    await alive.record(taken, result, now=T0 + timedelta(seconds=27))
    assert alive.held == set()
    async with db.session() as session:
        row = await session.get(Feed, feed)
        assert row is not None and row.lease_owner is None and row.lease_until is None


async def test_two_pollers_racing_on_one_story_make_one_event_and_one_alert(
    db: Database, pg_url: str
) -> None:
    async with db.session() as session:
        bloomberg = Feed(name="Bloomberg", url="https://bbg.example/rss", backfilled=True)
        mirror = Feed(name="Mirror", url="https://mirror.example/rss", backfilled=True)
        session.add_all(
            [bloomberg, mirror, Watch(name="nato", query="NATO communique", channel_id=7)]
        )
    item = FeedItem(
        key="nato-1",
        title="NATO summit draft communique calls out China",
        summary="Dual-use materials.",
        link="https://news.example/nato-draft",
        published=T0,
    )
    async with db.session() as session:
        watches = await load_watch_set(session)

    first = db.sessions()
    second = db.sessions()
    async with first as s1, second as s2:
        await ingest(s1, bloomberg, [item], watches, now=T0, alert=True)  # not committed yet
        racer = asyncio.create_task(
            ingest(s2, mirror, [replace(item, key="mirror-1")], watches, now=T0, alert=True)
        )
        admin = await asyncpg.connect(pg_url)
        try:

            async def waiting_on_lock() -> bool:
                assert not racer.done(), "the second ingest did not wait for the first"
                return bool(
                    await admin.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND NOT granted AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                )

            await wait_until(waiting_on_lock, within=10, what="the second ingest to wait")
        finally:
            await admin.close()
        await s1.commit()
        report = await racer
        await s2.commit()
    assert report.new_events == [] and len(report.joined_events) == 1
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 1
        assert await session.scalar(select(func.count()).select_from(Entry)) == 2
        assert await session.scalar(select(func.count()).select_from(Alert)) == 1


async def test_listener_wakes_on_commit_only_and_after_reconnecting(
    db: Database, pg_url: str
) -> None:
    woken = asyncio.Event()
    listener = OutboxListener(pg_url, woken.set)
    async with listener:
        await asyncio.wait_for(listener.listening.wait(), 10)
        await asyncio.wait_for(woken.wait(), 10)  # the catch-up wake after connecting
        woken.clear()

        async with db.sessions() as session:
            await announce_outbox(session)
            await session.flush()
            await session.rollback()
        async with db.session() as session:
            await announce_outbox(session)
        await asyncio.wait_for(woken.wait(), 10)
        # One notification: the rolled-back transaction's was never sent.
        assert listener.notifications == 1

        # The listening connection dies (a PostgreSQL restart, a failover): it comes back.
        woken.clear()
        admin = await asyncpg.connect(pg_url)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
        finally:
            await admin.close()
        assert killed == 1
        await asyncio.wait_for(woken.wait(), 15)  # woken by the reconnect's catch-up
        await asyncio.wait_for(listener.listening.wait(), 10)
        woken.clear()
        async with db.session() as session:
            await announce_outbox(session)
        await asyncio.wait_for(woken.wait(), 10)
    assert listener.notifications == 2
