"""Cancelling a polling round, or stopping the app in the middle of one, with a real SQLite file.

A cancelled round must finish promptly: no caller left waiting for a group commit nobody will
make, nothing recorded twice, and every feed it did not record handed back (or left to its
lease). Each test stops the round at a chosen point with events and the store's write lock;
nothing waits on the clock (the timeouts only bound a failure, which would otherwise hang).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import func, select

from feeds.rounds import Poller
from feeds.types import FetchResult, FetchState
from tests.helpers import FeedServer, rss
from timeline.app.config import DatabaseSettings, FeedConfig, PollingSettings, Settings
from timeline.app.wiring import App
from timeline.storage.engine import Database
from timeline.storage.models import Feed, FetchLog
from timeline.usecases.polling import DueFeed, FeedOutcome, PollStore

SETTINGS = PollingSettings(jitter=0.0)
FAILURE_BOUND = 10  # seconds; only ever reached when a task waits forever


async def add_feeds(db: Database, count: int) -> list[int]:
    async with db.session() as session:
        feeds = [
            Feed(
                name=f"feed-{i}",
                url=f"http://127.0.0.1:9/{i}.xml",
                next_check_at=datetime.now(UTC) - timedelta(seconds=1),
            )
            for i in range(count)
        ]
        session.add_all(feeds)
        await session.flush()
        return [feed.id for feed in feeds]


async def leases(db: Database) -> dict[str, str | None]:
    async with db.session() as session:
        return {f.name: f.lease_owner for f in (await session.scalars(select(Feed))).all()}


async def fetch_logs(db: Database) -> dict[int, int]:
    async with db.session() as session:
        rows = await session.execute(
            select(FetchLog.feed_id, func.count()).group_by(FetchLog.feed_id)
        )
        return {feed_id: n for feed_id, n in rows.tuples()}


def error(due: DueFeed) -> FetchResult:
    return FetchResult(due.state.url, "error", due.state, error="boom", error_kind="http")


@pytest.fixture
async def store(db: Database) -> AsyncIterator[PollStore]:
    store = PollStore(db, SETTINGS, owner="me")
    yield store
    if store._write_lock is not None and store._write_lock.locked():
        store._write_lock.release()


async def _nothing() -> None:
    return None


async def run_ready_tasks() -> None:
    """Return once every task that was ready has run to its next wait.

    Tasks take their steps in the order they were scheduled, so a task created now runs after
    them; awaiting it waits for exactly that, whatever the machine's speed.
    """
    await asyncio.create_task(_nothing())


async def test_a_follower_cancelled_right_after_being_handed_the_queue_hands_it_on(
    db: Database, store: PollStore
) -> None:
    """The committer is cancelled and hands the queue to the next caller, which is cancelled
    in turn before it can take it: the third caller must still be committed, not left waiting
    for a commit nobody makes (and so must every caller after it)."""
    await add_feeds(db, 4)
    due = await store.claim_due()
    await store.begin_round()
    lock = store._write_lock
    assert lock is not None
    await lock.acquire()  # the committer queues on the write lock with the others behind it
    leader = asyncio.create_task(store.record(due[0], error(due[0])))
    handed = asyncio.create_task(store.record(due[1], error(due[1])))
    last = asyncio.create_task(store.record(due[2], error(due[2])))
    await run_ready_tasks()
    assert not (leader.done() or handed.done() or last.done())

    loop = asyncio.get_running_loop()
    leader.cancel()
    # Runs after the leader's next step (which hands `handed` the queue) and before `handed`
    # resumes: the narrowest window, taken deterministically.
    loop.call_soon(handed.cancel)
    lock.release()
    async with asyncio.timeout(FAILURE_BOUND):
        await asyncio.wait({leader, handed})
        outcome = await last
        # The group commit is not stuck either: a later caller is committed on its own.
        later = await store.record(due[3], error(due[3]))
    assert leader.cancelled() and handed.cancelled()
    assert isinstance(outcome, FeedOutcome) and outcome.outcome == "error"
    assert later.outcome == "error"

    # The cancelled callers were not recorded and gave their feeds back; the others were
    # recorded once.
    assert await fetch_logs(db) == {due[2].id: 1, due[3].id: 1}
    assert set((await leases(db)).values()) == {None}
    assert store.held == set()


async def test_a_cancelled_queued_caller_is_dropped_from_the_group_commit(
    db: Database, store: PollStore
) -> None:
    """A caller cancelled while queued is not committed behind its back: it releases its lease
    and its feed is fetched again, so a later fetch cannot be overwritten by this stale one."""
    await add_feeds(db, 3)
    due = await store.claim_due()
    await store.begin_round()
    lock = store._write_lock
    assert lock is not None
    await lock.acquire()
    first = asyncio.create_task(store.record(due[0], error(due[0])))
    await run_ready_tasks()  # `first` commits alone, waiting for the lock
    queued = asyncio.create_task(store.record(due[1], error(due[1])))
    kept = asyncio.create_task(store.record(due[2], error(due[2])))
    await run_ready_tasks()
    queued.cancel()
    lock.release()
    async with asyncio.timeout(FAILURE_BOUND):
        await asyncio.wait({first, queued, kept})
    assert queued.cancelled()
    assert first.result().outcome == "error" and kept.result().outcome == "error"
    assert await fetch_logs(db) == {due[0].id: 1, due[2].id: 1}
    assert set((await leases(db)).values()) == {None}


class _Fetcher:
    """Answers fetches with an error at once, except the URLs in `stuck`, which never answer.

    The first fetch takes `hold` (the store's write lock, free once the feeds are claimed), so
    the round's recordings queue behind it until the test lets them go.
    """

    def __init__(self, stuck: set[str], total: int, hold: asyncio.Lock) -> None:
        self.stuck = stuck
        self.total = total
        self.hold: asyncio.Lock | None = hold
        self.asked: set[str] = set()
        self.all_asked = asyncio.Event()

    async def fetch(self, state: FetchState) -> FetchResult:
        if self.hold is not None:
            await self.hold.acquire()
            self.hold = None
        self.asked.add(state.url)
        if len(self.asked) == self.total:
            self.all_asked.set()
        if state.url in self.stuck:
            await asyncio.Event().wait()
        return FetchResult(state.url, "error", state, error="boom", error_kind="http")


class _ReleaseWatch(PollStore):
    """A PollStore that tells when `count` recordings have begun handing their leases back."""

    def __init__(self, db: Database, count: int) -> None:
        super().__init__(db, SETTINGS, owner="me")
        self.releasing: list[int] = []
        self.count = count
        self.all_releasing = asyncio.Event()

    async def release(self, feed_ids: list[int]) -> None:
        self.releasing.extend(feed_ids)
        if len(self.releasing) >= self.count:
            self.all_releasing.set()
        await super().release(feed_ids)


async def test_a_round_cancelled_twice_finishes_and_hands_back_what_it_did_not_record(
    db: Database,
) -> None:
    """Cancel a round while recordings wait for the write lock, and cancel it again while they
    hand their leases back: the round still ends, every waiting recording released its feed,
    nothing was recorded, and the next round records each feed once."""
    ids = await add_feeds(db, 5)
    store = _ReleaseWatch(db, count=3)
    async with db.session() as session:
        urls = {f.id: f.url for f in (await session.scalars(select(Feed))).all()}
    lock = store._write_lock
    assert lock is not None
    fetcher = _Fetcher({urls[ids[3]], urls[ids[4]]}, total=len(ids), hold=lock)
    poller = Poller(store, fetcher, concurrency=10)
    round_ = asyncio.create_task(poller.run_round())
    async with asyncio.timeout(FAILURE_BOUND):
        await fetcher.all_asked.wait()
    await run_ready_tasks()  # three recordings queued behind the lock, two fetches stuck

    round_.cancel()
    async with asyncio.timeout(FAILURE_BOUND):
        await store.all_releasing.wait()  # all three now wait for the lock to release
    round_.cancel()  # must not cut those releases short
    lock.release()
    async with asyncio.timeout(FAILURE_BOUND):
        await asyncio.wait({round_})
    assert round_.cancelled()
    assert sorted(store.releasing) == ids[:3]
    assert await fetch_logs(db) == {}
    owners = await leases(db)
    # Released by the recordings; the two stuck fetches were never recorded: still held (the
    # app hands those back when it stops, or their leases run out).
    assert [owners[f"feed-{i}"] for i in range(5)] == [None, None, None, "me", "me"]
    assert store.held == set(ids[3:])
    await store.release(sorted(store.held))

    fetcher.stuck.clear()
    async with asyncio.timeout(FAILURE_BOUND):
        report = await poller.run_round()
    assert len(report.outcomes) == 5
    assert await fetch_logs(db) == dict.fromkeys(ids, 1)


@pytest.fixture
async def slow_server(feed_server: FeedServer) -> AsyncIterator[tuple[FeedServer, asyncio.Event]]:
    reached = asyncio.Event()
    never = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        reached.set()
        await never.wait()
        return web.Response(status=500)

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500, text="oops")

    feed_server.handlers["/slow.xml"] = slow
    feed_server.handlers["/broken.xml"] = broken
    feed_server.bodies["/good.xml"] = rss(("1", "One", "s"))
    try:
        yield feed_server, reached
    finally:
        never.set()


def _ours(task: asyncio.Task[object]) -> bool:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", "")
    return name.startswith(("Poller.", "PollStore.", "App.", "run_coroutine_job"))


async def test_stopping_the_app_ends_the_round_in_flight_before_it_returns(
    tmp_path: Path, slow_server: tuple[FeedServer, asyncio.Event]
) -> None:
    """`App.stop` with a scheduled round in flight (one fetch hanging): when it returns, the
    round has finished (nothing of it is left for the event loop's shutdown to cancel a
    second time, which could leave SQLAlchemy's shielded close of an aiosqlite connection
    waiting forever), and the hanging feed was handed back."""
    server, reached = slow_server
    settings = Settings(
        path="<test>",
        database=DatabaseSettings(f"sqlite:///{tmp_path / 'stop.db'}"),
        polling=replace(
            PollingSettings(),
            allow_private=("127.0.0.1",),
            jitter=0.0,
            tick_seconds=3600.0,  # one round: the first tick runs at once
            timeout_seconds=FAILURE_BOUND,
        ),
        feeds=(
            FeedConfig("good", server.url("/good.xml")),
            FeedConfig("broken", server.url("/broken.xml")),
            FeedConfig("slow", server.url("/slow.xml")),
        ),
    )
    app = App(settings)
    async with app:
        await app.prepare()
        app.start_scheduler()
        async with asyncio.timeout(FAILURE_BOUND):
            await reached.wait()
    assert [t for t in asyncio.all_tasks() if _ours(t)] == []

    db = Database(settings.database.url)
    try:
        assert (await leases(db))["slow"] is None
        async with db.session() as session:
            slow = await session.scalar(select(Feed).where(Feed.name == "slow"))
            assert slow is not None
            assert slow.last_checked_at is None  # not recorded: due again at once
        assert all(n == 1 for n in (await fetch_logs(db)).values())
    finally:
        await db.dispose()
