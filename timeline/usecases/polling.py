"""The database side of polling: which feeds are due, and recording what a fetch found.

Scheduling state lives in the feeds rows (`next_check_at`, `error_count`, `etag`, ...): one
scheduler job asks for the due feeds, instead of one job per feed (Miniflux's scheduler).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, cast

from sqlalchemy import Table, bindparam, insert, or_, select, text, update
from sqlalchemy.orm import InstrumentedAttribute

from feeds.types import FetchResult, FetchState
from timeline.app import metrics
from timeline.app.config import PollingSettings
from timeline.domain.clustering import EventIndex
from timeline.storage import notices
from timeline.storage.engine import Database
from timeline.storage.event_snapshot import EventSnapshot
from timeline.storage.models import Feed, FeedNotice, FetchLog, utcnow
from timeline.storage.notify import announce_outbox
from timeline.storage.search import sync_search_index
from timeline.storage.snapshot import snapshot_file
from timeline.storage.storylines import StorylineCache, snapshot_path
from timeline.usecases.heap import HeapKeeper
from timeline.usecases.ingest import (
    CLUSTER_WINDOW,
    IngestReport,
    NewAlert,
    WatchSet,
    ingest,
    load_recent_sources,
    load_watch_set,
    lock_links,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DueFeed:
    """A feed claimed for one fetch: what the fetcher needs to know."""

    id: int
    name: str
    state: FetchState


@dataclass(slots=True)
class FeedOutcome:
    """What happened to one feed in a round."""

    feed_id: int
    name: str
    url: str
    outcome: str
    error: str | None = None
    error_kind: str | None = None
    new_entries: int = 0
    new_events: int = 0
    joined_events: int = 0
    edited_alerts: int = 0
    alerts: list[NewAlert] = field(default_factory=list)
    backfill: bool = False
    next_check_at: datetime | None = None


class PollStore:
    """Claims due feeds and records fetch results, each in its own short transaction."""

    def __init__(
        self,
        db: Database,
        settings: PollingSettings,
        owner: str = "local",
        heap: HeapKeeper | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.owner = owner
        self.watches: WatchSet | None = None
        # Recent events per guild scope, for clustering; refreshed from the database each round
        # (entries other processes stored included) and extended by this process's ingests.
        self.events: dict[int, EventIndex] = {}
        self._events_seen: datetime | None = None
        # Entries in the indexes (loaded, or stored by this process) -> their first_seen_at,
        # kept for a lease after the watermark: see `begin_round`.
        self._known: dict[int, datetime] = {}
        # Recent events per guild scope with their storylines (see timeline.storage.storylines).
        self.storylines = StorylineCache(
            timedelta(days=settings.storyline_window_days),
            snapshot_path(settings.storyline_snapshot, db),
        )
        # Where the clustering indexes are saved for the next start (see storage.event_snapshot).
        self.event_snapshot = EventSnapshot(
            snapshot_file(settings.event_index_snapshot, db, "events.npz"), CLUSTER_WINDOW
        )
        # The process's keeper of long-lived objects (see usecases.heap): the poller processes
        # pass one, so the garbage collector skips the indexes.
        self.heap = heap
        # Feeds claimed and not yet recorded: the leases `renew_leases` keeps alive.
        self.held: set[int] = set()
        # SQLite has one writer at a time; queueing here is cheaper than busy-waiting there.
        self._write_lock = asyncio.Lock() if db.dialect == "sqlite" else None
        # Group commit of fetches without items (see `record`).
        self._grouped: list[_Queued] = []
        self._grouping = False

    @property
    def lease(self) -> timedelta:
        """How long a claim holds a feed unless renewed."""
        return timedelta(seconds=self.settings.lease_seconds)

    async def claim_due(self, now: datetime | None = None, limit: int = 1000) -> list[DueFeed]:
        """Lease up to `limit` due feeds to this owner, oldest due first.

        On PostgreSQL the candidate rows are locked with SKIP LOCKED, so pollers claiming at the
        same moment take disjoint sets; under READ COMMITTED a row another poller leased and
        committed meanwhile is re-checked against the WHERE clause and left out.
        """
        now = now or utcnow()
        async with self._writing(), self.db.session() as session:
            query = (
                select(Feed.id, Feed.name, Feed.url, Feed.etag, Feed.last_modified, Feed.body_hash)
                .where(
                    Feed.enabled.is_(True),
                    Feed.retired_at.is_(None),
                    Feed.next_check_at <= now,
                    or_(Feed.lease_until.is_(None), Feed.lease_until < now),
                )
                .order_by(Feed.next_check_at, Feed.id)
                .limit(limit)
            )
            if self.db.dialect == "postgresql":
                # Several pollers on one database: each takes feeds the others have not locked.
                query = query.with_for_update(skip_locked=True)
            # Columns, not ORM objects: nothing to track, and the UPDATE has no session state
            # to synchronise (its "evaluate" pass tested every id against every object).
            feeds = (await session.execute(query)).tuples().all()
            if not feeds:
                return []
            ids = [f[0] for f in feeds]
            for start in range(0, len(ids), _IN_CHUNK):
                await session.execute(
                    update(Feed)
                    .where(Feed.id.in_(ids[start : start + _IN_CHUNK]))
                    .values(lease_owner=self.owner, lease_until=now + self.lease)
                    .execution_options(synchronize_session=False)
                )
            self.held.update(ids)
            metrics.FEEDS_CLAIMED.inc(len(feeds))
            return [
                DueFeed(feed_id, name, FetchState(url, etag, last_modified, body_hash))
                for feed_id, name, url, etag, last_modified, body_hash in feeds
            ]

    async def renew_leases(self, now: datetime | None = None) -> int:
        """Extend the leases of the feeds this owner claimed and has not recorded yet.

        A round longer than the lease (a big batch behind a small concurrency) would otherwise
        hand its queued feeds to another poller while they still wait here. A dead process
        renews nothing, so its feeds come free when the lease runs out.
        """
        held = list(self.held)
        if not held:
            return 0
        now = now or utcnow()
        async with self._writing(), self.db.session() as session:
            result = await session.execute(
                update(Feed)
                .where(Feed.id.in_(held), Feed.lease_owner == self.owner)
                .values(lease_until=now + self.lease)
                .execution_options(synchronize_session=False)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def release(self, feed_ids: list[int]) -> None:
        """Hand back this owner's leases of `feed_ids` without recording a fetch."""
        self.held.difference_update(feed_ids)
        if not feed_ids:
            return
        async with self._writing(), self.db.session() as session:
            await session.execute(
                update(Feed)
                .where(Feed.id.in_(feed_ids), Feed.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    async def make_all_due(self, now: datetime | None = None) -> int:
        """Mark every active feed due now and take it from other pollers (`poll --once --all`).

        The command is an operator's explicit request to poll everything, so a feed still
        leased -- typically by a poller that was killed and whose lease has not run out -- is
        taken over instead of skipped. Returns how many leases were taken.
        """
        now = now or utcnow()
        active = (Feed.enabled.is_(True), Feed.retired_at.is_(None))
        async with self._writing(), self.db.session() as session:
            leased = (
                await session.execute(
                    select(Feed.id, Feed.name, Feed.lease_owner).where(
                        *active, Feed.lease_until.is_not(None), Feed.lease_until >= now
                    )
                )
            ).all()
            await session.execute(
                update(Feed)
                .where(*active)
                .values(next_check_at=now, lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )
        for feed_id, name, owner in leased:
            log.warning(
                "feed %r was leased by %s: taken for poll --all",
                name,
                owner,
                extra={"feed_id": feed_id, "lease_owner": owner},
            )
        return len(leased)

    async def begin_round(self, now: datetime | None = None) -> None:
        """Compile the watches once for the round and bring the event indexes up to date."""
        now = now or utcnow()
        # Another poller's round stamps its entries with the time the round started and
        # commits them over the round, which its lease bounds. So reading only what is newer
        # than the newest entry seen so far would miss that poller's later commits whenever
        # one of them was read mid-round: read from a lease before the watermark instead, and
        # skip the entries already in the indexes.
        settling = self.heap.settling() if self.heap else contextlib.nullcontext()
        async with self.db.session() as session:
            with settling:
                self.watches = await load_watch_set(session)
                if not self.event_snapshot.loaded:
                    # A start: from the snapshot, if there is a usable one. (After a rollback
                    # the window is read from the database, as by a start without one.)
                    loaded = await self.event_snapshot.load(session, now)
                    if loaded is not None:
                        self.events, self._events_seen = loaded.indexes, loaded.seen
                        self._known = loaded.known
                since = None if self._events_seen is None else self._events_seen - self.lease
                newest = await load_recent_sources(
                    session,
                    self.events,
                    seen_after=since,
                    now=now,
                    skip=self._known,
                    loaded=self._known,
                )
                if newest is not None and (self._events_seen is None or newest > self._events_seen):
                    self._events_seen = newest
                if self._events_seen is not None:
                    horizon = self._events_seen - self.lease
                    self._known = {i: t for i, t in self._known.items() if t >= horizon}
                # A start with a snapshot builds the storyline indexes in a thread while its
                # first round runs (ingest waits for them before it places an event): the
                # clustering indexes above are all a round needs to begin.
                if not (self.storylines.loaded == "" and self.storylines.load_in_background()):
                    await self.storylines.refresh(session, now)
            # Between transactions only: the indexes then hold nothing that may be rolled back.
            state = None if self._grouping else self.storylines.capture(now)
            for index in self.events.values():
                index.prune(now)
            events_state = None
            if not self._grouping and self.event_snapshot.due(now):
                events_state = await self.event_snapshot.capture(
                    session, now, self.events, self._events_seen, self._known
                )
        if state is not None:
            await self.storylines.save_state(state)
        if events_state is not None:
            await self.event_snapshot.save(events_state)

    def _writing(self) -> asyncio.Lock | _NoLock:
        return self._write_lock or _NoLock()

    async def record(
        self,
        due: DueFeed,
        result: FetchResult,
        now: datetime | None = None,
        *,
        on_queued: Callable[[], None] | None = None,
    ) -> FeedOutcome:
        """Store the items and the scheduling state of one fetch; return once it is committed.

        Fetches are committed in groups (group commit): those that arrive while a transaction
        is running are recorded together in the next one, in the order they arrived, each
        fetch's items inside a SAVEPOINT of their own, so one feed's failure rolls back that
        feed only. `on_queued`, if given, is called once this fetch holds its place in that
        order (the poller then hands over the next feed's items: see feeds.rounds).
        """
        now = now or utcnow()
        if self.watches is None:
            await self.begin_round(now)
        try:
            outcome = await self._record_grouped(due, result, now, on_queued)
        except BaseException:
            # Not recorded: give the feed back so it is retried, instead of renewing its lease
            # forever or leaving it until the lease runs out. (Whoever ran the transaction has
            # dropped the event indexes if it did not commit: see `_record_grouped`.)
            try:
                await self.release([due.id])
            except Exception:
                log.exception("could not release the lease of feed %r", due.name)
            raise
        self.held.discard(due.id)
        metrics.POLLS.labels(outcome.outcome).inc()
        if outcome.error_kind or outcome.outcome == "error":
            metrics.FETCH_FAILURES.labels(outcome.error_kind or "unknown").inc()
        metrics.ITEMS_INGESTED.inc(outcome.new_entries)
        metrics.ALERTS_CREATED.inc(len(outcome.alerts))
        return outcome

    def _schedule(
        self, row: _FeedRow, result: FetchResult, now: datetime, report: IngestReport
    ) -> FeedOutcome:
        """Work out a fetch's new scheduling state of `row` (in `row.changes`)."""
        outcome = FeedOutcome(row.id, row.name, row.url, result.outcome)
        row.set("last_checked_at", now)
        if row.lease_owner in (self.owner, None):
            # Another poller may hold it if ours ran out while we were stuck: leave theirs.
            row.set("lease_owner", None)
            row.set("lease_until", None)
        if result.outcome == "error":
            self._record_error(row, result, now)
            outcome.error = result.error
            outcome.error_kind = result.error_kind
        else:
            outcome.backfill = not (row.backfilled or self.settings.alert_on_first_poll)
            self._record_success(row, result, now)
        outcome.new_entries = report.new_entries
        outcome.new_events = len(report.new_events)
        outcome.joined_events = len(report.joined_events)
        outcome.edited_alerts = report.edited_alerts
        outcome.alerts = report.alerts
        outcome.next_check_at = row.next_check_at
        return outcome

    async def _record_grouped(  # noqa: C901 (the hand-over cases in order)
        self,
        due: DueFeed,
        result: FetchResult,
        now: datetime,
        on_queued: Callable[[], None] | None = None,
    ) -> FeedOutcome:
        """Queue a fetch; the first caller in commits the queue, in batches, in queue order.

        Cancelling a caller never strands the others: a cancelled committer hands what is still
        queued to a live caller (resolving its future with None), and a caller cancelled after
        being handed the queue, before it could take it, hands it on in turn. A cancelled
        caller's fetch that is still queued is dropped, not committed: its lease is released by
        `record` and the feed is fetched again.

        The committer keeps the event indexes true to what was committed: a batch that does
        not commit (an error, a cancellation) or a feed whose SAVEPOINT rolled back drops them
        (`_drop_event_indexes`), and the next round reloads them from the database.
        """
        mine: asyncio.Future[FeedOutcome | BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._grouped.append((due, result, now, mine))
        if on_queued is not None:
            on_queued()
        if self._grouping:
            try:
                done = await mine
            except asyncio.CancelledError:
                if _handed_over(mine):
                    # Handed the queue, then cancelled before taking it: pass it on.
                    self._hand_over()
                raise
            if isinstance(done, BaseException):
                raise done
            if done is not None:
                return done
            # None: the committer was cancelled and handed the queue over to us.
        self._grouping = True
        own: FeedOutcome | BaseException | None = None
        batch: list[_Queued] = []
        try:
            while self._grouped:
                # Callers cancelled while queued have given up (and release their leases).
                live = [q for q in self._grouped if q[3] is mine or not q[3].done()]
                batch = _take_batch(live)
                self._grouped = live[len(batch) :]
                if not batch:
                    break
                outcomes: list[FeedOutcome | BaseException]
                try:
                    outcomes = list(await self._record_batch(batch))
                except Exception as exc:
                    self._drop_event_indexes()
                    outcomes = [exc] * len(batch)  # each caller releases its own lease
                for (*_, waiter), outcome in zip(batch, outcomes, strict=True):
                    if waiter is mine:
                        own = outcome
                    elif not waiter.done():
                        waiter.set_result(outcome)
                batch = []
        finally:
            self._grouping = False
            if batch:
                # Cancelled mid-batch: the transaction did not commit (or may not have). The
                # batch's callers fail and release their leases (a no-op for any feed whose
                # state the interrupted transaction did commit).
                self._drop_event_indexes()
                for *_, waiter in batch:
                    if waiter is not mine and not waiter.done():
                        waiter.set_result(RuntimeError("recording was cancelled"))
            # Cancelled with fetches still queued: hand over to a live caller to commit them.
            self._hand_over()
        if isinstance(own, BaseException):
            raise own
        assert own is not None
        return own

    def _hand_over(self) -> None:
        """Give the queue to its first live caller to commit, or empty it if none is left.

        Called with no committer running. The chosen caller's future resolves to None; it
        takes over when it resumes (or, if it is cancelled before that, hands over again).
        """
        live = [waiter for *_, waiter in self._grouped if not waiter.done()]
        if live:
            self._grouping = True
            live[0].set_result(None)
        else:
            self._grouping = False
            self._grouped = []

    async def _record_batch(  # noqa: C901 (the steps of one group transaction in order)
        self, batch: list[_Queued]
    ) -> list[FeedOutcome | Exception]:
        """Record several fetches in one transaction; return each one's outcome (or error).

        Each fetch with items is ingested inside a SAVEPOINT: if it fails, that savepoint is
        rolled back, its error is its outcome, and the others go on. Then, for all of them,
        Core statements and no ORM objects: one executemany UPDATE of the feeds per set of
        changed columns (most rows share one), one executemany INSERT of the fetch log rows
        (and of any notices); the new entries are indexed for search once for the batch.
        """
        assert self.watches is not None
        ingesting = [q for q in batch if q[1].outcome == "ok" and q[1].items]
        async with self._writing(), self.db.session() as session:
            if ingesting and self.db.dialect == "sqlite":
                # pysqlite opens its transaction only before an INSERT, UPDATE or DELETE; a
                # SAVEPOINT outside one starts a transaction that its RELEASE would commit,
                # feed by feed. Open the transaction first, so the batch commits as one, and
                # IMMEDIATE: it takes the write lock now (waiting busy_timeout for it). A
                # deferred one would read first and then fail at its first write, without
                # waiting, if another connection (the Discord process marking alerts sent)
                # had committed meanwhile: SQLite cannot move a reader's snapshot forward.
                await session.execute(text("BEGIN IMMEDIATE"))
            ids = [due.id for due, *_ in batch]
            rows: dict[int, _FeedRow] = {}
            guilds: dict[int, int] = {}
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                found = await session.execute(
                    select(*_FeedRow.COLUMNS, Feed.guild_id).where(Feed.id.in_(chunk))
                )
                for *columns, guild_id in found.tuples():
                    rows[columns[0]] = _FeedRow(*columns)
                    guilds[columns[0]] = guild_id
            if self.db.dialect == "postgresql":
                # The link locks of `ingest` are held until the batch commits, and each feed's
                # ingest would take its own: take every link's lock of the batch at once, in
                # sorted order, so two pollers' batches never wait on each other in a circle.
                await lock_links(
                    session,
                    [i.link for d, r, *_ in ingesting if d.id in rows for i in r.items if i.link],
                )
            outcomes: list[FeedOutcome | Exception] = []
            logs: list[dict[str, object]] = []
            notices_: list[dict[str, object]] = []
            by_columns: dict[tuple[str, ...], list[dict[str, object]]] = {}
            indexed = announce = False
            for due, result, now, _ in batch:
                row = rows.get(due.id)
                if row is None:  # removed while it was being fetched
                    outcomes.append(FeedOutcome(due.id, due.name, due.state.url, "removed"))
                    continue
                report = IngestReport()
                if result.outcome == "ok" and result.items:
                    # A detached copy of the row for `ingest` (nothing of it is written back).
                    feed = Feed(id=row.id, guild_id=guilds[row.id], name=row.name, url=row.url)
                    try:
                        async with session.begin_nested():
                            report = await ingest(
                                session,
                                feed,
                                result.items,
                                self.watches,
                                now=now,
                                alert=row.backfilled or self.settings.alert_on_first_poll,
                                events=self.events.setdefault(feed.guild_id, EventIndex()),
                                storylines=self.storylines,
                                sync_search=False,
                            )
                    except Exception as exc:
                        # Rolled back to the savepoint: the indexes may hold what was undone.
                        self._drop_event_indexes()
                        outcomes.append(exc)
                        continue
                    self._known.update(dict.fromkeys(report.entry_ids, now))
                    indexed |= report.new_entries > 0
                    announce |= bool(report.alerts or report.edited_alerts)
                outcomes.append(self._schedule(row, result, now, report))
                changes = row.changes
                if result.outcome == "ok":
                    changes["backfilled"] = True
                    if result.feed_title:
                        changes["title"] = result.feed_title[:500]
                by_columns.setdefault(tuple(sorted(changes)), []).append({"_id": row.id, **changes})
                logs.append(_fetch_log(row.id, result, now, report))
                if row.notice is not None:
                    notices_.append(row.notice)
            if indexed:
                # In the same transaction as the entries, so a search never pays for a
                # backlog of a whole polling round.
                await sync_search_index(session)
            for columns, params in by_columns.items():
                await session.execute(
                    update(_FEEDS)
                    .where(_FEEDS.c.id == bindparam("_id"))
                    .values({c: bindparam(c) for c in columns}),
                    params,
                )
            if logs:
                await session.execute(insert(_FETCH_LOG), logs)
            if notices_:
                await session.execute(insert(cast(Table, FeedNotice.__table__)), notices_)
            if announce:
                # Delivered on commit: the Discord process wakes up for rows it can see.
                await announce_outbox(session)
        return outcomes

    def _drop_event_indexes(self) -> None:
        # The index may now name rows that were rolled back: rebuild it next round.
        self.events.clear()
        self._events_seen = None
        self._known = {}
        self.storylines.drop()

    def _interval(self, feed: _FeedRow) -> float:
        base = feed.interval_seconds or self.settings.interval_seconds
        base = min(
            max(base, self.settings.min_interval_seconds), self.settings.max_interval_seconds
        )
        # Jitter spreads feeds added together so they do not all fall due in the same tick.
        return base * (1 + random.uniform(-self.settings.jitter, self.settings.jitter))

    def _record_success(self, row: _FeedRow, result: FetchResult, now: datetime) -> None:
        if row.status == "failing":
            log.info("feed %r recovered after %d errors", row.name, row.error_count)
            row.notify(notices.RECOVERED, now)
        row.set("error_count", 0)
        row.set("last_error", None)
        row.set("status", "ok")
        row.set("last_success_at", now)
        row.set("etag", result.state.etag)
        row.set("last_modified", result.state.last_modified)
        row.set("body_hash", result.state.body_hash)
        if result.permanent_url and result.permanent_url != row.url:
            log.info("feed %r moved permanently: %s -> %s", row.name, row.url, result.permanent_url)
            row.set("url", result.permanent_url)
        row.set("next_check_at", now + timedelta(seconds=self._interval(row)))

    def _record_error(self, row: _FeedRow, result: FetchResult, now: datetime) -> None:
        row.set("error_count", row.error_count + 1)
        row.set("last_error", (result.error or "unknown error")[:2000])
        if row.error_count >= self.settings.failing_after:
            if row.status != "failing":
                log.warning(
                    "feed %r marked failing after %d errors: %s",
                    row.name,
                    row.error_count,
                    row.last_error,
                )
                row.notify(notices.FAILING, now)
            row.set("status", "failing")
        # Exponential backoff, capped; a server's Retry-After is honoured when it asks for more.
        delay = min(
            self._interval(row) * 2 ** min(row.error_count - 1, 20),
            float(self.settings.backoff_max_seconds),
        )
        if result.retry_after:
            delay = max(delay, min(result.retry_after, float(self.settings.backoff_max_seconds)))
        row.set("next_check_at", now + timedelta(seconds=delay))


_FEEDS = cast(Table, Feed.__table__)
_FETCH_LOG = cast(Table, FetchLog.__table__)
_IN_CHUNK = 500  # ids per IN (...) list


@dataclass(slots=True)
class _FeedRow:
    """The scheduling columns of one feed, and what a fetch's outcome changes in them."""

    COLUMNS: ClassVar[tuple[InstrumentedAttribute[Any], ...]] = (
        Feed.id,
        Feed.name,
        Feed.url,
        Feed.interval_seconds,
        Feed.status,
        Feed.error_count,
        Feed.last_error,
        Feed.lease_owner,
        Feed.backfilled,
    )

    id: int
    name: str
    url: str
    interval_seconds: int | None
    status: str
    error_count: int
    last_error: str | None
    lease_owner: str | None
    backfilled: bool
    next_check_at: datetime | None = None
    changes: dict[str, object] = field(default_factory=dict)
    # The feed_notices row this change adds (failing or recovered), if any.
    notice: dict[str, object] | None = None

    @classmethod
    def of(cls, feed: Feed) -> _FeedRow:
        """The scheduling columns of an ORM feed."""
        return cls(
            feed.id,
            feed.name,
            feed.url,
            feed.interval_seconds,
            feed.status,
            feed.error_count,
            feed.last_error,
            feed.lease_owner,
            feed.backfilled,
        )

    def set(self, column: str, value: Any) -> None:
        """Change `column` (and the attribute of that name, if this row mirrors it)."""
        self.changes[column] = value
        if column in _MIRRORED:
            setattr(self, column, value)

    def notify(self, kind: str, now: datetime) -> None:
        """Add the feed_notices row of this feed's change to `kind` (see timeline.storage.notices)."""
        self.notice = {
            "feed_id": self.id,
            "kind": kind,
            "detail": (self.last_error or None) if kind == notices.FAILING else None,
            "error_count": self.error_count,
            "created_at": now,
        }


_MIRRORED = frozenset(
    {"url", "status", "error_count", "last_error", "lease_owner", "next_check_at"}
)


def _fetch_log(
    feed_id: int, result: FetchResult, now: datetime, report: IngestReport
) -> dict[str, Any]:
    return {
        "feed_id": feed_id,
        "started_at": now,
        "outcome": result.outcome,
        "status_code": result.status,
        # An ok fetch keeps what its parse repaired (one line each, see feeds.parse).
        "error": result.error or ("\n".join(result.warnings) or None),
        "error_kind": result.error_kind,
        "new_entries": report.new_entries,
        "bytes_read": result.bytes_read,
        "duration_ms": result.duration_ms,
    }


_Queued = tuple[
    DueFeed, FetchResult, datetime, "asyncio.Future[FeedOutcome | BaseException | None]"
]
# Items per group transaction (a batch takes at least one fetch): bounds the transaction, and
# on PostgreSQL the advisory locks it holds (one per link, see `lock_links`).
_BATCH_ITEMS = 500


def _take_batch(queued: list[_Queued]) -> list[_Queued]:
    """The first fetches of `queued` to record together: up to `_BATCH_ITEMS` items."""
    items = 0
    for n, (_, result, *_) in enumerate(queued):
        items += len(result.items) if result.outcome == "ok" else 0
        if n and items > _BATCH_ITEMS:
            return queued[:n]
    return queued


def _handed_over(waiter: asyncio.Future[FeedOutcome | BaseException | None]) -> bool:
    """Whether a group-commit caller's future says "the queue is yours" (a None result)."""
    if not waiter.done() or waiter.cancelled():
        return False
    # exception() also marks a failure as retrieved, so the loop does not log it as lost.
    return waiter.exception() is None and waiter.result() is None


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None
