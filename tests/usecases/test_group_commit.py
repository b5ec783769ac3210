"""Group commit of fetches with items: several feeds' ingests in one transaction, each in a
SAVEPOINT of its own, on SQLite and on PostgreSQL.

The group tests hold the committer inside one feed's ingest (a gate around the real `ingest`),
so the fetches recorded meanwhile queue and are committed together in the next transaction;
nothing waits on the clock (the timeouts only bound a failure, which would otherwise hang).
The last test is about one fetch: its new events are inserted together after its items.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from feeds.types import FeedItem, FetchResult
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Entry, Event, Feed, FetchLog, Watch
from timeline.usecases import polling
from timeline.usecases.ingest import _id_runs, ingest
from timeline.usecases.polling import DueFeed, PollStore

SETTINGS = PollingSettings(jitter=0.0)
FAILURE_BOUND = 10  # seconds; only ever reached when a task waits forever
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def items(feed: int) -> list[FeedItem]:
    """Two stories of their own per feed (no two feeds' stories cluster together)."""
    topics = [
        ("Harbour crane collapses in storm", "Dock workers evacuated at dawn."),
        ("Orchestra cancels winter tour", "The conductor fell ill in Vienna."),
        ("Glacier retreat measured by drones", "Survey teams mapped the ice tongue."),
        ("Chess prodigy wins national title", "The final game lasted six hours."),
        ("Vineyard frost ruins early harvest", "Growers lit fires between the rows."),
        ("Satellite launch delayed by valve", "Engineers replaced the faulty part."),
        ("Library reopens after flood repairs", "Volunteers dried ten thousand books."),
        ("Ferry strike strands island tourists", "Unions demand safer crew rotas."),
    ]
    return [
        FeedItem(
            key=f"f{feed}-{n}",
            title=topics[(2 * feed + n) % len(topics)][0],
            summary=topics[(2 * feed + n) % len(topics)][1],
            link=f"https://news{feed}.example/story/{n}",
            published=NOW - timedelta(hours=n + 1),
        )
        for n in range(2)
    ]


def ok(due: DueFeed, feed: int) -> FetchResult:
    return FetchResult(due.state.url, "ok", due.state, items=items(feed), status=200)


async def add_feeds(db: Database, count: int) -> list[int]:
    async with db.session() as session:
        feeds = [
            Feed(
                name=f"feed-{i}",
                url=f"http://127.0.0.1:9/{i}.xml",
                next_check_at=NOW - timedelta(seconds=1),
                backfilled=True,
            )
            for i in range(count)
        ]
        session.add_all(feeds)
        await session.flush()
        return [feed.id for feed in feeds]


async def stored(db: Database) -> dict[int, list[str]]:
    """The stored entry keys per feed id."""
    async with db.session() as session:
        rows = await session.execute(select(Entry.feed_id, Entry.key).order_by(Entry.key))
        found: dict[int, list[str]] = {}
        for feed_id, key in rows.tuples():
            found.setdefault(feed_id, []).append(key)
        return found


async def feed_rows(db: Database) -> dict[int, tuple[str | None, datetime, datetime | None]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Feed.id, Feed.lease_owner, Feed.next_check_at, Feed.last_checked_at)
        )
        return {i: (owner, due, checked) for i, owner, due, checked in rows.tuples()}


async def fetch_logs(db: Database) -> dict[int, int]:
    async with db.session() as session:
        rows = await session.execute(
            select(FetchLog.feed_id, func.count()).group_by(FetchLog.feed_id)
        )
        return {feed_id: n for feed_id, n in rows.tuples()}


class Gate:
    """Wraps the real `ingest`: holds the ingest of `hold` until opened (and that of `hold_too`
    until `opened_too`), fails that of `fail` after it wrote everything (so its savepoint has
    something to roll back)."""

    def __init__(self, hold: int | None = None, fail: int | None = None) -> None:
        self.hold = hold
        self.fail = fail
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.hold_too: int | None = None
        self.entered_too = asyncio.Event()
        self.opened_too = asyncio.Event()
        self.order: list[int] = []
        self.real = ingest

    async def __call__(self, session: Any, feed: Feed, *args: Any, **kwargs: Any) -> Any:
        self.order.append(feed.id)
        if feed.id == self.hold:
            self.entered.set()
            await self.opened.wait()
        if feed.id == self.hold_too:
            self.entered_too.set()
            await self.opened_too.wait()
        report = await self.real(session, feed, *args, **kwargs)
        if feed.id == self.fail:
            raise RuntimeError("boom after writing")
        return report


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    found = Gate()
    monkeypatch.setattr(polling, "ingest", found)
    yield found


async def _nothing() -> None:
    return None


async def run_ready_tasks() -> None:
    """Return once every task that was ready has run to its next wait."""
    await asyncio.create_task(_nothing())


async def test_one_feed_failing_mid_group_rolls_back_alone(sdb: Database, gate: Gate) -> None:
    """Feeds 1-3 are committed in one transaction; feed 2's ingest fails after writing. Its
    savepoint is rolled back (nothing of it stored), the others commit, its lease is released
    and it stays due, the event indexes forget what was rolled back, and the retry stores it
    once."""
    ids = await add_feeds(sdb, 4)
    store = PollStore(sdb, SETTINGS, owner="me")
    due = await store.claim_due(NOW)
    await store.begin_round(NOW)
    gate.hold, gate.fail = ids[0], ids[2]

    first = asyncio.create_task(store.record(due[0], ok(due[0], 0), NOW))
    async with asyncio.timeout(FAILURE_BOUND):
        await gate.entered.wait()
    rest = [asyncio.create_task(store.record(d, ok(d, i), NOW)) for i, d in enumerate(due) if i]
    await run_ready_tasks()
    assert len(store._grouped) == 3 and not any(t.done() for t in rest)
    gate.opened.set()
    async with asyncio.timeout(FAILURE_BOUND):
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)

    assert gate.order == ids  # in the order they were queued
    assert isinstance(outcomes[2], RuntimeError)
    for i in (0, 1, 3):
        outcome = outcomes[i]
        assert isinstance(outcome, polling.FeedOutcome)
        assert (outcome.outcome, outcome.new_entries, outcome.new_events) == ("ok", 2, 2)
    keys = await stored(sdb)
    assert keys == {ids[i]: [f"f{i}-0", f"f{i}-1"] for i in (0, 1, 3)}
    assert await fetch_logs(sdb) == {ids[0]: 1, ids[1]: 1, ids[3]: 1}
    rows = await feed_rows(sdb)
    assert {owner for owner, *_ in rows.values()} == {None}
    assert rows[ids[2]][1] <= NOW and rows[ids[2]][2] is None  # still due, never checked
    assert rows[ids[3]][1] > NOW
    assert store.held == set()
    # The rolled-back events are not in the indexes (a later event may reuse their ids).
    lost = items(2)[0]
    for index in store.events.values():
        found = index.find(
            title=lost.title, summary=lost.summary, published=lost.published, link=lost.link
        )
        assert found is None

    # Feed 2 is due again and retried; a second fetch of feed 1 stores nothing twice.
    gate.hold = gate.fail = None
    await store.begin_round(NOW)
    again = await store.claim_due(NOW)
    assert [d.id for d in again] == [ids[2]]
    retried = await store.record(again[0], ok(again[0], 2), NOW)
    assert (retried.new_entries, retried.new_events) == (2, 2)
    twice = await store.record(due[1], ok(due[1], 1), NOW)
    assert twice.new_entries == 0
    assert await stored(sdb) == {ids[i]: [f"f{i}-0", f"f{i}-1"] for i in range(4)}
    async with sdb.session() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 8


async def test_a_caller_cancelled_while_its_ingest_runs_is_committed_once(
    sdb: Database, gate: Gate
) -> None:
    """A caller cancelled while the committer is ingesting its items: the group still
    commits (its state included), nothing is stored twice, and no lease is left behind."""
    ids = await add_feeds(sdb, 3)
    store = PollStore(sdb, SETTINGS, owner="me")
    due = await store.claim_due(NOW)
    await store.begin_round(NOW)
    gate.hold = ids[1]
    tasks = [asyncio.create_task(store.record(d, ok(d, i), NOW)) for i, d in enumerate(due)]
    async with asyncio.timeout(FAILURE_BOUND):
        await gate.entered.wait()
    tasks[1].cancel()
    await run_ready_tasks()
    gate.opened.set()
    async with asyncio.timeout(FAILURE_BOUND):
        await asyncio.wait(tasks)
    assert tasks[1].cancelled()
    assert [t.result().new_entries for t in (tasks[0], tasks[2])] == [2, 2]
    assert await stored(sdb) == {ids[i]: [f"f{i}-0", f"f{i}-1"] for i in range(3)}
    assert await fetch_logs(sdb) == {i: 1 for i in ids}
    rows = await feed_rows(sdb)
    assert {owner for owner, *_ in rows.values()} == {None}
    assert all(next_check > NOW for _, next_check, _ in rows.values())
    assert store.held == set()


async def test_a_committer_cancelled_mid_ingest_rolls_back_and_hands_over(
    sdb: Database, gate: Gate
) -> None:
    """The committer is cancelled inside its ingest: its transaction is rolled back (nothing
    of it stored, its feed given back and retried), the indexes are dropped, and the fetches
    queued behind it are committed by the next caller."""
    ids = await add_feeds(sdb, 3)
    store = PollStore(sdb, SETTINGS, owner="me")
    due = await store.claim_due(NOW)
    await store.begin_round(NOW)
    gate.hold = ids[0]
    leader = asyncio.create_task(store.record(due[0], ok(due[0], 0), NOW))
    async with asyncio.timeout(FAILURE_BOUND):
        await gate.entered.wait()
    others = [asyncio.create_task(store.record(d, ok(d, i), NOW)) for i, d in enumerate(due) if i]
    await run_ready_tasks()
    leader.cancel()
    async with asyncio.timeout(FAILURE_BOUND):
        await asyncio.wait([leader, *others])
    assert leader.cancelled()
    assert [t.result().new_entries for t in others] == [2, 2]
    assert await stored(sdb) == {ids[i]: [f"f{i}-0", f"f{i}-1"] for i in (1, 2)}
    assert await fetch_logs(sdb) == {ids[1]: 1, ids[2]: 1}
    rows = await feed_rows(sdb)
    assert {owner for owner, *_ in rows.values()} == {None}
    assert rows[ids[0]][1] <= NOW  # given back, due again
    lost = items(0)[0]
    for index in store.events.values():
        found = index.find(
            title=lost.title, summary=lost.summary, published=lost.published, link=lost.link
        )
        assert found is None

    gate.hold = None
    again = await store.claim_due(NOW)
    assert [d.id for d in again] == [ids[0]]
    assert (await store.record(again[0], ok(again[0], 0), NOW)).new_entries == 2
    assert await stored(sdb) == {ids[i]: [f"f{i}-0", f"f{i}-1"] for i in range(3)}


async def test_a_group_cancelled_after_one_feed_commits_none_of_it(
    sdb: Database, gate: Gate
) -> None:
    """The committer is cancelled in the second feed's ingest of a group: the first feed's
    released savepoint is not committed on its own either (the group is one transaction), and
    both feeds are given back and retried once. (On SQLite this needs the explicit BEGIN.)"""
    ids = await add_feeds(sdb, 3)
    store = PollStore(sdb, SETTINGS, owner="me")
    due = await store.claim_due(NOW)
    await store.begin_round(NOW)
    gate.hold, gate.hold_too = ids[0], ids[2]
    leader = asyncio.create_task(store.record(due[0], ok(due[0], 0), NOW))
    async with asyncio.timeout(FAILURE_BOUND):
        await gate.entered.wait()
    others = [asyncio.create_task(store.record(d, ok(d, i), NOW)) for i, d in enumerate(due) if i]
    await run_ready_tasks()
    gate.opened.set()  # the leader commits feed 0, then takes feeds 1 and 2 in one batch
    async with asyncio.timeout(FAILURE_BOUND):
        await gate.entered_too.wait()
    assert gate.order == ids
    leader.cancel()
    async with asyncio.timeout(FAILURE_BOUND):
        outcomes = await asyncio.gather(leader, *others, return_exceptions=True)
    # The leader's own feed was committed in the batch before; cancelled, it still raises.
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert all(isinstance(o, RuntimeError) for o in outcomes[1:])
    assert await stored(sdb) == {ids[0]: ["f0-0", "f0-1"]}
    assert await fetch_logs(sdb) == {ids[0]: 1}
    rows = await feed_rows(sdb)
    assert {owner for owner, *_ in rows.values()} == {None}
    for i in (1, 2):
        lost = items(i)[0]
        for index in store.events.values():
            found = index.find(
                title=lost.title, summary=lost.summary, published=lost.published, link=lost.link
            )
            assert found is None

    gate.hold = gate.hold_too = None
    await store.begin_round(NOW)
    again = await store.claim_due(NOW)
    assert [d.id for d in again] == [ids[1], ids[2]]
    for i, d in enumerate(again, start=1):
        assert (await store.record(d, ok(d, i), NOW)).new_entries == 2
    assert await stored(sdb) == {ids[i]: [f"f{i}-0", f"f{i}-1"] for i in range(3)}


async def test_a_story_twice_in_one_fetch_is_one_event_with_the_earliest_date(
    sdb: Database,
) -> None:
    """The events of one fetch are inserted together after its items are matched: an item
    that joins an event an earlier item of the same fetch created (not inserted yet) joins it,
    moves its date earlier, and its alert is written once, for that event."""
    ids = await add_feeds(sdb, 1)
    async with sdb.session() as session:
        session.add(Watch(name="cranes", query="crane", channel_id=7))
    store = PollStore(sdb, SETTINGS, owner="me")
    [due] = await store.claim_due(NOW)
    await store.begin_round(NOW)
    title, summary = "Harbour crane collapses in storm", "Dock workers evacuated at dawn."
    copies = [
        FeedItem(
            key=f"copy-{n}",
            title=title,
            summary=summary,
            link=f"https://news.example/crane/{n}",
            published=NOW - timedelta(hours=hours),
        )
        for n, hours in enumerate((1, 3))
    ]
    result = FetchResult(due.state.url, "ok", due.state, items=copies, status=200)
    outcome = await store.record(due, result, NOW)
    assert (outcome.new_entries, outcome.new_events, outcome.joined_events) == (2, 1, 1)
    assert len(outcome.alerts) == 1
    async with sdb.session() as session:
        events = (await session.execute(select(Event.id, Event.occurred_at))).tuples().all()
        assert len(events) == 1
        [(event_id, occurred)] = events
        assert occurred == NOW - timedelta(hours=3)
        entries = await session.scalars(select(Entry.event_id).where(Entry.feed_id == ids[0]))
        assert list(entries) == [event_id, event_id]
        assert list(await session.scalars(select(Alert.event_id))) == [event_id]


def test_id_runs_are_the_longest_runs_of_consecutive_ids() -> None:
    ids = {*range(1, 101), *range(150, 160), *range(200, 400), 401}
    assert _id_runs(ids, most=32, shortest=64) == [(1, 100), (200, 399)]
    assert _id_runs(ids, most=1, shortest=5) == [(200, 399)]
    assert _id_runs(frozenset()) == []


async def test_a_round_reads_what_another_poller_stored_next_to_a_run_it_knows(
    sdb: Database,
) -> None:
    """The ids this process already indexed are left out of the round's read by runs; an
    entry another poller stored right after such a run is still read into the index."""
    ids = await add_feeds(sdb, 2)
    mine = PollStore(sdb, SETTINGS, owner="me")
    other = PollStore(sdb, SETTINGS, owner="other")
    [due] = await mine.claim_due(NOW, limit=1)
    await mine.begin_round(NOW)
    many = [
        FeedItem(
            key=f"bulk-{n}",
            title=f"Council minutes item {n} {'x' * (n % 7)}",
            summary=f"Agenda point {n * 7919} approved.",
            link=f"https://minutes.example/{n}",
            published=NOW - timedelta(minutes=n + 1),
        )
        for n in range(70)
    ]
    result = FetchResult(due.state.url, "ok", due.state, items=many, status=200)
    assert (await mine.record(due, result, NOW)).new_entries == 70
    await mine.begin_round(NOW)  # sets the watermark: the next round reads what is newer
    [theirs] = await other.claim_due(NOW)
    assert theirs.id == ids[1]
    await other.begin_round(NOW)
    assert (await other.record(theirs, ok(theirs, 3), NOW)).new_entries == 2
    assert len(mine._known) == 70 and _id_runs(mine._known)

    await mine.begin_round(NOW)
    story = items(3)[0]
    found = mine.events[0].find(
        title=story.title, summary=story.summary, published=story.published, link=story.link
    )
    assert found is not None


async def test_a_write_committed_by_another_connection_mid_group_does_not_fail_it(
    db: Database, tmp_path: Any
) -> None:
    """SQLite: another connection (the Discord process marking an alert sent) writes while a
    group transaction has read but not yet written. The group holds the write lock from its
    start, so the other writer waits (here: gives up at once) and the recording succeeds; a
    deferred transaction would have failed at its first write ("database is locked")."""
    await add_feeds(db, 1)
    store = PollStore(db, SETTINGS, owner="me")
    [due] = await store.claim_due(NOW)
    await store.begin_round(NOW)
    other_writes: list[str] = []

    def write_from_another_connection(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if other_writes or not statement.lstrip().upper().startswith("INSERT INTO ENTRIES"):
            return
        other = sqlite3.connect(tmp_path / "timeline.db", timeout=0)
        try:
            other.execute("UPDATE feeds SET title = 'touched' WHERE id = ?", (due.id,))
            other.commit()
            other_writes.append("committed")
        except sqlite3.OperationalError as exc:
            other_writes.append(str(exc))
        finally:
            other.close()

    event.listen(db.engine.sync_engine, "before_cursor_execute", write_from_another_connection)
    try:
        outcome = await store.record(due, ok(due, 0), NOW)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", write_from_another_connection)
    assert other_writes == ["database is locked"]
    assert outcome.outcome == "ok"
    assert outcome.new_entries == 2
    assert await stored(db) == {due.id: ["f0-0", "f0-1"]}
