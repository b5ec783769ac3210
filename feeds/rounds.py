"""One polling round: claim the due feeds, fetch them concurrently, hand each result over.

This module knows no database: it talks to a store (claim due feeds, record a result) and to a
fetcher (URL state in, `FetchResult` out). `timeline.usecases.polling.PollStore` is the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from feeds.types import FetchResult, FetchState

log = logging.getLogger(__name__)


class Due(Protocol):
    id: int
    name: str
    state: FetchState


class Store(Protocol):
    async def claim_due(self, now: datetime | None = None, limit: int = 1000) -> list[Any]: ...

    async def begin_round(self, now: datetime | None = None) -> None: ...

    async def record(
        self,
        due: Any,
        result: FetchResult,
        now: datetime | None = None,
        *,
        on_queued: Callable[[], None] | None = None,
    ) -> Any:
        """Record one fetch. `on_queued` is called once the fetch holds its place in the
        store's order of recording (a store that records one at a time calls it first)."""
        ...


class FetcherLike(Protocol):
    async def fetch(self, state: FetchState) -> FetchResult: ...


@dataclass(slots=True)
class RoundReport:
    """What one round did: the store's per-feed outcomes and the wall time."""

    outcomes: list[Any] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> list[Any]:
        return [o for o in self.outcomes if getattr(o, "outcome", None) == "error"]


class Poller:
    """Runs rounds; at most one at a time (a slow round makes the next tick skip, not pile up)."""

    def __init__(
        self,
        store: Store,
        fetcher: FetcherLike,
        *,
        concurrency: int = 20,
        batch: int = 1000,
        on_outcome: Callable[[Any], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.concurrency = concurrency
        self.batch = batch
        self.on_outcome = on_outcome
        self._running = asyncio.Lock()

    async def run_round(self, now: datetime | None = None) -> RoundReport:
        """Poll every feed that is due now; never raises for a single feed's failure."""
        report = RoundReport()
        if self._running.locked():
            log.info("previous polling round still running; skipping this tick")
            return report
        async with self._running:
            started = time.perf_counter()
            due = await self.store.claim_due(now, self.batch)
            if due:
                await self.store.begin_round(now)
                semaphore = asyncio.Semaphore(self.concurrency)
                # Feeds are fetched concurrently but their items are ingested in the order the
                # feeds were claimed (due time, then id), whichever fetch finishes first:
                # which event a story joins must not depend on network timing. turns[i] is
                # set once feed i's items hold their place in the store's order of recording
                # (or it brought none); the store may commit several feeds together.
                turns = [asyncio.Event() for _ in due]

                async def one(i: int, feed: Due) -> None:
                    async with semaphore:
                        result = await self._fetch_one(feed)
                    before = turns[i - 1] if i else None
                    # Recording queues on the store (SQLite has one writer), not on a fetch
                    # slot: the next fetches start meanwhile, and fetches without items that
                    # pile up there are committed together, out of turn (they ingest nothing).
                    try:
                        if result.outcome == "ok" and before is not None:
                            await before.wait()
                        queued = turns[i].set if result.outcome == "ok" else None
                        outcome = await self._record_one(feed, result, now, queued)
                        if result.outcome != "ok" and before is not None:
                            await before.wait()
                    finally:
                        turns[i].set()
                    if outcome is not None:
                        report.outcomes.append(outcome)
                        await self._announce(feed, outcome)

                # A task group, not gather: when the round is cancelled, every feed's task is
                # cancelled once and the round ends only after all of them have finished (a
                # recording hands its lease back on the way out). Cancelling the round again
                # meanwhile does not cancel them a second time, which could cut that clean-up
                # short; gather re-cancels its children on every cancel.
                async with asyncio.TaskGroup() as group:
                    for i, feed in enumerate(due):
                        group.create_task(one(i, feed))
            report.seconds = time.perf_counter() - started
            if due:
                log.info(
                    "polled %d feeds in %.2fs (%d errors)",
                    len(report.outcomes),
                    report.seconds,
                    len(report.errors),
                )
            return report

    async def _fetch_one(self, feed: Due) -> FetchResult:
        try:
            result = await self.fetcher.fetch(feed.state)
        except Exception as exc:  # a fetcher bug must not stop the other feeds
            log.exception("fetch of feed %r crashed", feed.name)
            result = FetchResult(
                url=feed.state.url,
                outcome="error",
                state=feed.state,
                error=f"internal error: {type(exc).__name__}",
                error_kind="internal",
            )
        if result.outcome == "error":
            # The fetcher has logged the one WARNING line (with the URL); this adds the name.
            log.debug("feed %r (%s) failed: %s", feed.name, feed.state.url, result.error)
        return result

    async def _record_one(
        self,
        feed: Due,
        result: FetchResult,
        now: datetime | None,
        queued: Callable[[], None] | None,
    ) -> Any:
        try:
            return await self.store.record(feed, result, now, on_queued=queued)
        except Exception:
            log.exception("recording the fetch of feed %r failed", feed.name)
            return None

    async def _announce(self, feed: Due, outcome: Any) -> None:
        if self.on_outcome is None:
            return
        try:
            await self.on_outcome(outcome)
        except Exception:  # the outcome is recorded; the other feeds go on
            log.exception("handling the outcome of feed %r failed", feed.name)
