"""Parse feed bodies in worker processes, with `concurrent.futures` (`polling.parse_workers`).

feedparser is CPU-bound: parsing in other processes keeps the event loop (and the Discord
heartbeat) responsive, uses more than one core, and lets a parse that runs too long be stopped
(a thread cannot be). Each of the `size` slots is a one-worker `ProcessPoolExecutor`, so a
worker that dies or is killed takes only its own job with it (a shared executor would break,
failing every job in flight). The workers fork from a forkserver that imported only
`feeds.parse` (feedparser) and the standard library: about 25 MB each, not a copy of the bot.

A slot's worker starts on first use, is reused, and is replaced after `max_jobs` jobs (bounds
the memory feedparser and the allocator keep) or when it dies. A worker that dies mid-job
fails that job only ("internal", never retried: the body may be what killed it); a job past
its deadline, or cancelled, kills its worker. `close()` lets the jobs in progress finish (up to
a grace period, then kills their workers) and waits for every worker to exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from multiprocessing.process import BaseProcess
from types import ModuleType
from typing import Any, cast

from feeds.parse import ParsedFeed, parse_job

log = logging.getLogger(__name__)

WORKER_DIED = ("internal", "the feed parser process died while parsing this feed")
POOL_STOPPED = ("internal", "the feed parser process was stopped while parsing this feed")
# How long one parse may take before its worker is killed. A 5 MB feed parses in a few seconds;
# feedparser's cost on some shapes grows with their square (feeds.parse checks the known
# ones before it starts): the deadline bounds the ones nobody has found yet.
PARSE_DEADLINE_SECONDS = 60.0
# Replace a worker after this many jobs: feedparser and the allocator hold on to memory.
MAX_JOBS_PER_WORKER = 1000
# How long close() waits for a job in progress before it kills the job's worker.
STOP_GRACE_SECONDS = 5.0

# Workers fork from a server process that imported the parser only (not the bot's __main__).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["feeds.parse", "feeds.seen"])


_SHUTDOWN_LOCK = threading.Lock()


class ParseWorkerError(Exception):
    """The parse raised in a worker (a bug); the message ends with the worker's traceback."""


class PoolClosed(RuntimeError):
    """The pool is closed: parse somewhere else."""


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the bot owns the shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def loaded_modules() -> list[str]:
    """The modules a worker process has imported (what `ParseWorkerPool.run` can show)."""
    return sorted(sys.modules)


class _Slot:
    """One worker process (a one-worker executor), owned by one job at a time."""

    def __init__(self) -> None:
        self.executor: ProcessPoolExecutor | None = None
        self.jobs = 0
        self.busy = False
        self.done = asyncio.Event()  # set while no job owns the slot
        self.done.set()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Submit one job, starting the worker if it is not running."""
        if self.executor is None:
            self.executor = ProcessPoolExecutor(1, mp_context=_CONTEXT, initializer=_ignore_sigint)
            self.jobs = 0
        # The executor starts its worker here, in this call (never from its own thread: no
        # max_tasks_per_child). multiprocessing makes each new process import the parent's
        # __main__ (the bot's entry point, and with it the whole bot); a worker needs only
        # the parser, so it is shown a bare __main__ meanwhile.
        main = sys.modules["__main__"]
        sys.modules["__main__"] = ModuleType("__main__")
        try:
            return self.executor.submit(fn, *args)
        finally:
            sys.modules["__main__"] = main

    def processes(self) -> list[BaseProcess]:
        executor = self.executor
        return list((executor._processes or {}).values()) if executor is not None else []

    def kill(self) -> list[BaseProcess]:
        """Kill the worker now (no await: a cancelled caller cannot leave it running)."""
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(OSError, ValueError):
                proc.kill()
        return procs

    async def retire(self, *, kill: bool) -> list[BaseProcess]:
        """Stop the worker (kill it, or let it finish its job and exit) and reap it."""
        executor, self.executor = self.executor, None
        if executor is None:
            return []
        procs: list[BaseProcess] = list((executor._processes or {}).values())
        if kill:
            for proc in procs:
                with contextlib.suppress(OSError, ValueError):
                    proc.kill()
        await asyncio.to_thread(_shutdown, executor, procs)
        return procs


def _shutdown(executor: ProcessPoolExecutor, procs: list[BaseProcess]) -> None:
    # close() and a job's owner may both stop one executor: a second shutdown after the first
    # is a no-op, two at once close its queue twice.
    with _SHUTDOWN_LOCK:
        executor.shutdown(wait=True)
    for proc in procs:
        proc.join()


class ParseWorkerPool:
    """Parse feed bodies in up to `size` worker processes; `await close()` when done."""

    def __init__(
        self,
        size: int,
        *,
        max_jobs: int = MAX_JOBS_PER_WORKER,
        deadline: float = PARSE_DEADLINE_SECONDS,
    ) -> None:
        if size < 1:
            raise ValueError("a parse worker pool needs at least one worker")
        if deadline <= 0:
            raise ValueError("a parse deadline must be positive")
        self.size = size
        self.max_jobs = max_jobs
        self.deadline = deadline
        self._slots = [_Slot() for _ in range(size)]
        self._idle = list(self._slots)
        self._free = asyncio.Semaphore(size)
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        return sorted(p.pid for slot in self._slots for p in slot.processes() if p.pid is not None)

    async def parse(
        self, body: bytes, headers: Mapping[str, str], url: str, now: datetime
    ) -> ParsedFeed | tuple[str, str]:
        """What `feeds.parse.parse_job` returns, computed in a worker process.

        A parse that takes longer than `deadline` seconds gets ("timeout", message) and its
        worker is killed. Raises PoolClosed once `close()` was called, ParseWorkerError if
        the parse raised.
        """
        result = await self.run(parse_job, body, dict(headers), url, now, url=url)
        return cast("ParsedFeed | tuple[str, str]", result)

    async def run(self, fn: Callable[..., Any], *args: Any, url: str) -> Any:
        """Run `fn(*args)` (picklable, importable by the worker) in a worker; `url` names the
        job in log lines. Deadline, deaths and errors as for `parse`."""
        async with self._free:
            if self._closed:
                raise PoolClosed("the parse worker pool is closed")
            slot = self._idle.pop()
            slot.busy = True
            slot.done.clear()
            try:
                return await self._run(slot, fn, args, url)
            finally:
                slot.busy = False
                slot.done.set()
                self._idle.append(slot)

    async def _run(
        self, slot: _Slot, fn: Callable[..., Any], args: tuple[Any, ...], url: str
    ) -> Any:
        future = slot.submit(fn, *args)
        pids = [p.pid for p in slot.processes()]
        try:
            async with asyncio.timeout(self.deadline):
                result = await asyncio.wrap_future(future)
        except TimeoutError:
            await slot.retire(kill=True)  # killed: it may be stuck for minutes
            # (The fetcher logs the feed's failure: this line only names the process.)
            log.info(
                "feed parse worker pid=%s killed: parsing url=%s took longer than %.0f s",
                ",".join(map(str, pids)),
                url,
                self.deadline,
            )
            return (
                "timeout",
                f"parsing took longer than {self.deadline:g} s: the document is too "
                "complex (stopped)",
            )
        except BrokenProcessPool:
            procs = await slot.retire(kill=True)
            if self._closed:
                log.warning("feed parse worker pid=%s stopped while parsing url=%s", pids, url)
                return POOL_STOPPED
            log.error(
                "feed parse worker pid=%s died while parsing url=%s (exit status %s); "
                "a new worker takes the next job",
                ",".join(map(str, pids)),
                url,
                ",".join(str(p.exitcode) for p in procs),
            )
            return WORKER_DIED
        except asyncio.CancelledError:
            # The job cannot be taken back from the worker: kill it before the first await,
            # so a second cancellation cannot leave it running; then reap it.
            slot.kill()
            await asyncio.shield(slot.retire(kill=True))
            raise
        except Exception as exc:
            # The parse raised in the worker (a bug): its traceback comes back as the cause.
            slot.jobs += 1
            remote = exc.__cause__ if exc.__cause__ is not None else exc
            raise ParseWorkerError(
                f"parse failed in a worker process for url={url}:\n{remote}"
            ) from exc
        slot.jobs += 1
        if self._closed or slot.jobs >= self.max_jobs:
            await slot.retire(kill=False)
        return result

    async def close(self) -> None:
        """Stop every worker and wait for them; jobs in progress finish first (up to a grace
        period, then their workers are killed). Later `parse()` calls raise PoolClosed."""
        self._closed = True
        for slot in self._slots:
            executor = slot.executor
            if executor is None:
                continue
            procs = slot.processes()
            try:
                async with asyncio.timeout(STOP_GRACE_SECONDS):
                    await asyncio.shield(asyncio.to_thread(_shutdown, executor, procs))
            except TimeoutError:
                slot.kill()  # its job's owner sees the pool broken and returns POOL_STOPPED
                await asyncio.to_thread(_shutdown, executor, procs)
            if slot.executor is executor:
                slot.executor = None
        for slot in self._slots:
            # The job's owner has its answer (or POOL_STOPPED) once its worker is gone.
            await slot.done.wait()
