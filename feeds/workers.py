"""A pool of feed parse worker processes (`python -m feeds.worker`) for the fetcher.

feedparser is CPU-bound: parsing big bodies in other processes keeps the event loop (and the
Discord heartbeat) responsive and uses more than one core. The workers import only the parser
(about 25 MB each), where `multiprocessing`'s spawned workers re-imported the parent's
`__main__` module and everything it imports, and aiohttp with `feeds.fetch`.

At most `size` jobs run at once, one per worker. Workers start on first use, are reused, and
are replaced after `max_jobs` jobs (bounds the memory feedparser and the allocator keep) or
when one dies. A worker that dies mid-job fails that job only ("internal", never retried: the
body may be what killed it); a job cancelled mid-exchange kills its worker (the pipes are in
an unknown state). `close()` closes the workers' stdin (they exit on EOF), kills the ones that
do not exit promptly, and waits for every one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import cast

from feeds.parse import ParsedFeed
from feeds.worker import FRAME_HEADER, MAX_FRAME_BYTES, TEST_HOOKS_FLAG, encode_frame

log = logging.getLogger(__name__)

WORKER_DIED = ("internal", "the feed parser process died while parsing this feed")
POOL_STOPPED = ("internal", "the feed parser process was stopped while parsing this feed")
# How long one parse may take before its worker is killed. A 5 MB feed parses in a few seconds;
# feedparser's cost on some shapes grows with their square (feeds.parse checks the known
# ones before it starts): the deadline bounds the ones nobody has found yet.
PARSE_DEADLINE_SECONDS = 60.0
# Replace a worker after this many jobs: feedparser and the allocator hold on to memory.
MAX_JOBS_PER_WORKER = 1000
# How long a worker may take to exit once its stdin is closed (it finishes its current job).
STOP_GRACE_SECONDS = 5.0
# How long a worker whose output ended mid-job may take to finish dying before it is killed.
DEATH_GRACE_SECONDS = 1.0
# The directory that holds the `feeds` package: on the workers' PYTHONPATH, so that they find
# it when the bot runs from a source checkout rather than an installed package.
_SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)


class ParseWorkerError(Exception):
    """The parse raised in a worker (a bug); the message ends with the worker's traceback."""


class PoolClosed(RuntimeError):
    """The pool is closed: parse somewhere else."""


class _Worker:
    """One worker process; owned by one job at a time, or idle in the pool."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.jobs = 0
        self.busy = False
        self.reaped = asyncio.Event()

    async def exchange(self, frame: bytes) -> tuple[str, object]:
        """Send one job frame and return the worker's answer."""
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(frame)
        await stdin.drain()
        (size,) = FRAME_HEADER.unpack(await stdout.readexactly(FRAME_HEADER.size))
        if size > MAX_FRAME_BYTES:
            raise ValueError(f"parse worker sent a {size}-byte frame: its output is corrupt")
        answer = pickle.loads(await stdout.readexactly(size))
        status, payload = answer
        return status, payload


def worker_command(*, test_hooks: bool = False) -> list[str]:
    """The command line of a worker process."""
    # -P: no current directory on sys.path (a stray feeds/ or logging.py there would win).
    command = [sys.executable, "-P", "-m", "feeds.worker"]
    if test_hooks:
        command.append(TEST_HOOKS_FLAG)
    return command


def worker_environment(source_root: str = _SOURCE_ROOT) -> dict[str, str]:
    """This process's environment, with the `feeds` package's directory first on PYTHONPATH.

    An installed package (in site-packages) is found without it, and putting site-packages
    before the standard library would let a stray module there shadow a standard one.
    """
    env = dict(os.environ)
    if Path(source_root).name in ("site-packages", "dist-packages"):
        return env
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = source_root + os.pathsep + existing if existing else source_root
    return env


class ParseWorkerPool:
    """Parse feed bodies in up to `size` worker processes; `await close()` when done."""

    def __init__(
        self,
        size: int,
        *,
        max_jobs: int = MAX_JOBS_PER_WORKER,
        deadline: float = PARSE_DEADLINE_SECONDS,
        test_hooks: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError("a parse worker pool needs at least one worker")
        if deadline <= 0:
            raise ValueError("a parse deadline must be positive")
        self.size = size
        self.max_jobs = max_jobs
        self.deadline = deadline
        self._test_hooks = test_hooks
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()  # started and not reaped yet
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        return sorted(w.proc.pid for w in self._workers)

    async def parse(
        self, body: bytes, headers: Mapping[str, str], url: str, now: datetime
    ) -> ParsedFeed | tuple[str, str]:
        """What `feeds.parse.parse_job` returns, computed in a worker process.

        A parse that takes longer than `deadline` seconds gets ("timeout", message) and its
        worker is killed. Raises PoolClosed once `close()` was called, ParseWorkerError if
        the parse raised.
        """
        result = await self._run((body, dict(headers), url, now), url)
        return cast("ParsedFeed | tuple[str, str]", result)

    async def run_test_hook(self, name: str) -> object:
        """Run a test hook of feeds/worker.py in a worker (a pool made with test_hooks=True)."""
        if not self._test_hooks:
            raise RuntimeError("this pool was made without test_hooks")
        return await self._run(("hook", name), f"test-hook:{name}")

    async def _run(self, job: tuple[object, ...], url: str) -> object:
        frame = encode_frame(job)
        async with self._slots:
            if self._closed:
                raise PoolClosed("the parse worker pool is closed")
            worker = await self._take()
            worker.busy = True
            try:
                async with asyncio.timeout(self.deadline):
                    status, payload = await worker.exchange(frame)
            except TimeoutError:
                pid = worker.proc.pid
                await self._retire(worker, grace=0.0)  # killed: it may be stuck for minutes
                # (The fetcher logs the feed's failure: this line only names the process.)
                log.info(
                    "feed parse worker pid=%d killed: parsing url=%s took longer than %.0f s",
                    pid,
                    url,
                    self.deadline,
                )
                return (
                    "timeout",
                    f"parsing took longer than {self.deadline:g} s: the document is too "
                    "complex (stopped)",
                )
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                pid = worker.proc.pid
                # A short grace: a worker that closed its stdout is exiting; its exit status
                # (-9 OOM killer, -11 crash...) is worth logging.
                await self._retire(worker, grace=DEATH_GRACE_SECONDS)
                if self._closed:
                    log.warning("feed parse worker pid=%d stopped while parsing url=%s", pid, url)
                    return POOL_STOPPED
                log.error(
                    "feed parse worker pid=%d died while parsing url=%s (%s, exit status %s); "
                    "a new worker takes the next job",
                    pid,
                    url,
                    type(exc).__name__,
                    worker.proc.returncode,
                )
                return WORKER_DIED
            except BaseException:
                # Cancelled (or a corrupt answer) mid-exchange: the worker cannot be reused.
                # _retire kills it before its first await, so a second cancellation cannot
                # leave it running.
                await self._retire(worker, grace=0.0)
                raise
            worker.busy = False
            worker.jobs += 1
            if self._closed or worker.jobs >= self.max_jobs:
                await self._retire(worker, grace=STOP_GRACE_SECONDS)
            else:
                self._idle.append(worker)
        if status == "raised":
            raise ParseWorkerError(f"parse failed in a worker process for url={url}:\n{payload}")
        return payload

    async def _take(self) -> _Worker:
        """An idle live worker, or a new one."""
        while self._idle:
            worker = self._idle.pop()
            if worker.proc.returncode is None:
                return worker
            log.warning(
                "idle feed parse worker pid=%d had exited (status %s); replacing it",
                worker.proc.pid,
                worker.proc.returncode,
            )
            await self._retire(worker, grace=0.0)
        proc = await asyncio.create_subprocess_exec(
            *worker_command(test_hooks=self._test_hooks),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=worker_environment(),
        )
        worker = _Worker(proc)
        self._workers.add(worker)
        log.debug("started feed parse worker pid=%d", proc.pid)
        return worker

    async def _retire(self, worker: _Worker, *, grace: float) -> None:
        """Stop `worker` (close its stdin, after `grace` seconds kill it) and reap it."""
        proc = worker.proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()  # the worker exits at EOF, after its current job
        try:
            if grace > 0 and proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace):
                        await proc.wait()
        finally:  # killed even if this wait is cancelled
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        # Read to EOF: a paused stdout pipe (an unread answer) would keep wait() waiting.
        with contextlib.suppress(OSError):
            await proc.stdout.read()
        await proc.wait()
        self._workers.discard(worker)
        worker.reaped.set()

    async def close(self) -> None:
        """Stop every worker and wait for them; jobs in progress finish first (up to a grace
        period, then their workers are killed). Later `parse()` calls raise PoolClosed."""
        self._closed = True
        idle, self._idle = self._idle, []
        owned = [w for w in self._workers if w not in idle]
        for worker in idle + owned:
            assert worker.proc.stdin is not None
            worker.proc.stdin.close()  # all exit at once; a job's owner retires its worker
        for worker in idle:
            await self._retire(worker, grace=STOP_GRACE_SECONDS)
        for worker in owned:
            if await _wait_event(worker.reaped, STOP_GRACE_SECONDS):
                continue
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()  # its owner sees EOF, returns POOL_STOPPED and reaps it
            if not await _wait_event(worker.reaped, STOP_GRACE_SECONDS):
                log.warning("feed parse worker pid=%d was not reaped", worker.proc.pid)


async def _wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` got set within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
