"""Wiring: one object owns the database, the fetcher, the poller and the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from feeds.fetch import Fetcher, FetchSettings
from feeds.rounds import Poller, RoundReport
from timeline.app.config import PollingSettings, Settings
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.notify import startup_lock
from timeline.usecases.config_io import sync_config
from timeline.usecases.heap import HeapKeeper
from timeline.usecases.polling import PollStore

log = logging.getLogger(__name__)


def fetch_settings(polling: PollingSettings) -> FetchSettings:
    """Map the [polling] settings onto the fetcher's own settings."""
    return FetchSettings.from_settings(polling)


def owner_id() -> str:
    """Name this process for leases: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class App:
    """The polling half of the product; the Discord bot plugs in beside it."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database.url)
        self.fetcher = Fetcher(fetch_settings(settings.polling))
        self.store = PollStore(self.db, settings.polling, owner=owner_id(), heap=HeapKeeper())
        self.poller = Poller(self.store, self.fetcher, concurrency=settings.polling.concurrency)
        self.scheduler: AsyncIOScheduler | None = None
        # The scheduled jobs' work in flight (see `_run_job`): `stop` ends it and waits for it.
        self._jobs: set[asyncio.Task[object]] = set()

    async def __aenter__(self) -> App:
        await self.fetcher.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def prepare(self, *, migrate: bool = True, accept_config: bool = False) -> None:
        """Bring the schema to head and sync the config file's feeds, watches and aliases.

        Raises ConfigRetiresTooMuch when the file would retire most feeds or watches at once,
        unless `accept_config` (the `--accept-config` flag).
        """
        await prepare_database(self.settings, self.db, migrate=migrate, accept_config=accept_config)

    async def poll_once(self, now: datetime | None = None) -> RoundReport:
        """Run one polling round now."""
        return await self.poller.run_round(now)

    async def poll_due(self) -> int:
        """Run rounds until one claims less than a full batch; return the feeds polled.

        With a batch smaller than the due set (several pollers share the work), one tick keeps
        claiming until this poller finds nothing left, instead of a batch per tick.
        """
        total = 0
        while True:
            report = await self.poller.run_round()
            total += len(report.outcomes)
            if len(report.outcomes) < self.poller.batch:
                return total

    async def renew_leases(self) -> None:
        """Keep the leases of the feeds this process still has to record."""
        try:
            await self.store.renew_leases()
        except Exception:
            # The next beat retries; at worst another poller polls the feed once more.
            log.exception("could not renew feed leases")

    async def run_polling(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set: claim a batch, poll it, claim again while feeds are due.

        The loop behind `timeline-bot poller`. Claims are `poller.batch` feeds at a time, so
        several pollers share a round; leases are renewed while a batch is in flight. After
        `stop`, the running batch is finished (fetches are bounded by the timeout) and the
        leases still held are handed back, so no feed waits for its lease to run out.
        """
        tick = self.settings.polling.tick_seconds
        heartbeat = asyncio.create_task(self._heartbeat(stop), name="lease-heartbeat")
        try:
            while not stop.is_set():
                report = await self.poller.run_round()
                if len(report.outcomes) >= self.poller.batch:
                    continue  # a full batch: more may be due right now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            try:
                await self.store.release(sorted(self.store.held))
            except Exception:
                log.exception("could not hand back the feed leases; they run out on their own")

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        every = max(self.settings.polling.lease_seconds / 3, 0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            await self.renew_leases()

    def start_scheduler(self) -> AsyncIOScheduler:
        """Start the job that ticks and polls whatever is due, and the lease heartbeat."""
        scheduler = _Scheduler(timezone="UTC")
        scheduler.add_job(
            partial(self._run_job, self.poll_due),
            "interval",
            seconds=self.settings.polling.tick_seconds,
            id="poll",
            name="App.poll_due",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now().astimezone(),
        )
        scheduler.add_job(
            partial(self._run_job, self.renew_leases),
            "interval",
            seconds=max(self.settings.polling.lease_seconds / 3, 0.1),
            id="lease-heartbeat",
            name="App.renew_leases",
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        self.scheduler = scheduler
        return scheduler

    async def _run_job(self, job: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Run one scheduled job's work in a task this App owns, and wait for it.

        APScheduler 3 cancels a running job when it shuts down and waits for nothing, so a
        polling round would go on recording (and handing back leases) after `stop` disposed
        the engine, until the event loop's own shutdown cancelled it a second time in the
        middle of that clean-up. So the work runs in a task of ours: a shutdown ends only this
        wrapper, and `stop` cancels the work once and waits for it before anything is closed.
        """
        task: asyncio.Task[object] = asyncio.create_task(job(), name=f"job {job.__name__}")
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # The scheduler is shutting down (or `stop` ended the work): `stop` cancels the
            # work and waits for it. Returning keeps APScheduler from logging the cancellation
            # as a failed job (it would swallow it all the same).
            return

    async def _end_jobs(self) -> None:
        """Cancel the scheduled work still running, once, and wait until it has finished."""
        cancelled: set[asyncio.Task[object]] = set()
        while jobs := [task for task in self._jobs if not task.done()]:
            for task in jobs:
                if task not in cancelled:
                    task.cancel()
                    cancelled.add(task)
            # wait(), not gather(): if `stop` is itself cancelled, the jobs are not cancelled a
            # second time in the middle of their clean-up.
            await asyncio.wait(jobs)
        for task in cancelled:
            if not task.cancelled() and task.exception() is not None:
                log.error("scheduled job failed while stopping", exc_info=task.exception())

    async def stop(self) -> None:
        """Stop the scheduler and its work in flight, hand back leases, close the HTTP session
        and dispose the engine."""
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        await self._end_jobs()
        if self.store.held:
            # Feeds claimed by a cancelled round and never recorded: due again now, not only
            # once their leases run out.
            try:
                await self.store.release(sorted(self.store.held))
            except Exception:
                log.exception("could not hand back the feed leases; they run out on their own")
        await self.fetcher.__aexit__(None, None, None)
        await self.db.dispose()


class _Scheduler(AsyncIOScheduler):
    """An AsyncIOScheduler that may be asked to shut down twice.

    AsyncIOScheduler only queues its shutdown on the loop and stays `running` until that runs;
    a second request meanwhile (`run` shuts the scheduler down, then `App.stop` does) raised
    SchedulerNotRunningError inside a loop callback.
    """

    _shutdown_requested = False

    def shutdown(self, wait: bool = True) -> None:
        if self._shutdown_requested:
            return
        super().shutdown(wait)
        self._shutdown_requested = True


async def prepare_database(
    settings: Settings, db: Database, *, migrate: bool = True, accept_config: bool = False
) -> None:
    """Migrate to head and sync the config file, one process at a time on PostgreSQL."""
    async with startup_lock(settings.database.url):
        if migrate:
            await upgrade_async(settings.database.url)
        async with db.session() as session:
            await sync_config(session, settings, accept=accept_config)
