"""The parse worker pool with real worker processes: results, deaths, cancellation, shutdown.

Jobs other than parses are plain picklable callables run through `ParseWorkerPool.run` (the
product has no test-only job kinds): `signal.raise_signal(SIGKILL)` for a worker that dies,
`time.sleep` for one that never answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.parse import ParsedFeed, parse_job
from feeds.parse_pool import (
    WORKER_DIED,
    ParseWorkerError,
    ParseWorkerPool,
    PoolClosed,
    loaded_modules,
)
from tests.feeds.conftest import fixture_bytes

NOW = datetime(2024, 7, 12, 8, 0, tzinfo=UTC)
FEED_URL = "https://feeds.example.com/news.xml"
RSS = {"Content-Type": "application/rss+xml"}
# (_pytest: this process's __main__, which a worker must not import.)
HEAVY_MODULES = (
    "_pytest",
    "pytest",
    "aiohttp",
    "sqlalchemy",
    "numpy",
    "discord",
    "timeline",
    "cli",
    "bot",
    "yarl",
)


def big_feed(items: int = 1000) -> bytes:
    entries = "".join(
        f"<item><title>Story {i}</title><link>https://example.com/{i}</link>"
        f"<description>&lt;p&gt;Summary of story {i}.&lt;/p&gt;</description>"
        f"<pubDate>Thu, 11 Jul 2024 10:{i % 60:02d}:00 GMT</pubDate></item>"
        for i in range(items)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>{entries}'
        "</channel></rss>"
    ).encode()


def alive(pid: int) -> bool:
    """Whether `pid` exists at all (a zombie that nobody reaped still does)."""
    return Path(f"/proc/{pid}").exists()


@pytest.fixture
async def pool() -> AsyncIterator[ParseWorkerPool]:
    running = ParseWorkerPool(1)
    try:
        yield running
    finally:
        await running.close()


async def warm(pool: ParseWorkerPool) -> int:
    """Run one job so that a worker is up; return its pid."""
    result = await pool.parse(fixture_bytes("rss20.xml"), RSS, FEED_URL, NOW)
    assert isinstance(result, ParsedFeed)
    [pid] = pool.pids
    return pid


async def until_busy(pool: ParseWorkerPool) -> None:
    """Let the event loop run until a job has taken a worker (no wall-clock wait)."""
    for _ in range(1000):
        if any(slot.busy for slot in pool._slots) and pool.pids:
            return
        await asyncio.sleep(0)
    raise AssertionError("no job took a worker")


@pytest.mark.parametrize(
    "name",
    [
        "rss20.xml",
        "atom.xml",
        "rss10_rdf.xml",
        "rss_windows1252.xml",
        "rss_truncated_with_entries.xml",
        "page_not_feed.html",
        "rss_malformed.xml",
        "rss_entity_bomb.xml",
        "rss_empty.xml",
    ],
)
async def test_a_worker_gives_what_a_thread_parse_gives(pool: ParseWorkerPool, name: str) -> None:
    body = fixture_bytes(name)
    expected = await asyncio.to_thread(parse_job, body, RSS, FEED_URL, NOW)
    assert await pool.parse(body, RSS, FEED_URL, NOW) == expected


async def test_a_big_feed_and_errors_in_turn_on_one_reused_worker(pool: ParseWorkerPool) -> None:
    body = big_feed()
    expected = await asyncio.to_thread(parse_job, body, RSS, FEED_URL, NOW)
    assert isinstance(expected, ParsedFeed) and len(expected.items) == 1000
    pid = await warm(pool)
    assert await pool.parse(body, RSS, FEED_URL, NOW) == expected
    assert await pool.parse(b"<html><body>hi</body></html>", {}, FEED_URL, NOW) == (
        "not_feed",
        "got an HTML page, not an RSS or Atom feed",
    )
    assert await pool.parse(body, RSS, FEED_URL, NOW) == expected
    assert pool.pids == [pid]


async def test_the_worker_imports_only_the_parser(pool: ParseWorkerPool) -> None:
    modules = await pool.run(loaded_modules, url="modules")
    assert isinstance(modules, list)
    assert "feedparser" in modules and "feeds.parse" in modules
    # (multiprocessing itself is there: the worker is its child.)
    assert [m for m in modules if m.split(".")[0] in HEAVY_MODULES] == []
    assert "feeds.fetch" not in modules


async def test_a_worker_killed_mid_job_fails_that_job_only(
    pool: ParseWorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    first = await warm(pool)
    with caplog.at_level(logging.ERROR, logger="feeds.parse_pool"):
        # The worker kills itself with SIGKILL.
        died = await pool.run(signal.raise_signal, signal.SIGKILL, url="sigkill")
        assert died == WORKER_DIED
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"pid={first} died while parsing url=sigkill" in error.getMessage()
    assert "-9" in error.getMessage()
    assert pool.pids == [] and not alive(first), "the dead worker was reaped"
    second = await warm(pool)  # the next job gets a fresh worker
    assert second != first


async def test_an_exception_in_the_parse_is_raised_and_the_worker_kept(
    pool: ParseWorkerPool,
) -> None:
    pid = await warm(pool)
    with pytest.raises(ParseWorkerError, match="ValueError: invalid literal for int"):
        await pool.run(int, "not a number", url="raise")
    assert pool.pids == [pid]
    assert await warm(pool) == pid


async def test_cancelling_a_job_kills_its_worker(pool: ParseWorkerPool) -> None:
    pid = await warm(pool)
    job = asyncio.create_task(pool.run(time.sleep, 3600, url="block"))  # never answers
    await until_busy(pool)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert pool.pids == [] and not alive(pid), "killed and reaped"
    assert await warm(pool) != pid


async def test_the_worker_ignores_sigint(pool: ParseWorkerPool) -> None:
    pid = await warm(pool)  # the worker answered: it is past its setup
    os.kill(pid, signal.SIGINT)
    assert await warm(pool) == pid


async def test_at_most_size_workers_run_jobs_at_once() -> None:
    pool = ParseWorkerPool(2)
    try:
        body = fixture_bytes("rss20.xml")
        results = await asyncio.gather(*(pool.parse(body, RSS, FEED_URL, NOW) for _ in range(5)))
        assert all(isinstance(r, ParsedFeed) for r in results)
        assert len(pool.pids) == 2  # the other jobs waited for a worker
    finally:
        await pool.close()


async def test_a_worker_is_replaced_after_max_jobs() -> None:
    pool = ParseWorkerPool(1, max_jobs=2)
    try:
        body = fixture_bytes("rss20.xml")
        await pool.parse(body, RSS, FEED_URL, NOW)
        [first] = pool.pids
        await pool.parse(body, RSS, FEED_URL, NOW)
        assert pool.pids == [] and not alive(first), "retired after its second job, and reaped"
        await pool.parse(body, RSS, FEED_URL, NOW)
        assert len(pool.pids) == 1 and pool.pids != [first]
    finally:
        await pool.close()


async def test_close_stops_every_worker_and_reaps_it() -> None:
    pool = ParseWorkerPool(2)
    body = big_feed(200)
    await asyncio.gather(*(pool.parse(body, RSS, FEED_URL, NOW) for _ in range(2)))
    pids = pool.pids
    assert len(pids) == 2 and all(alive(p) for p in pids)
    await pool.close()
    assert pool.pids == []
    assert not any(alive(p) for p in pids), "no worker left running or as a zombie"
    with pytest.raises(PoolClosed):
        await pool.parse(body, RSS, FEED_URL, NOW)
    assert pool.pids == []


async def test_close_lets_the_job_in_progress_finish() -> None:
    pool = ParseWorkerPool(1)
    body = big_feed()
    job = asyncio.create_task(pool.parse(body, RSS, FEED_URL, NOW))
    await until_busy(pool)
    [pid] = pool.pids
    await pool.close()
    result = job.result()  # close() returned after the job's answer came in
    assert isinstance(result, ParsedFeed) and len(result.items) == 1000
    assert not alive(pid)


async def test_a_parse_past_its_deadline_is_stopped_and_its_worker_killed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ParseWorkerPool(1)
    try:
        pid = await warm(pool)  # (the worker's start-up, its imports, under the default)
        pool.deadline = 0.2  # a job that sleeps for an hour: any deadline is passed
        with caplog.at_level(logging.INFO, logger="feeds.parse_pool"):
            answer = await pool.run(time.sleep, 3600, url="block")
        assert isinstance(answer, tuple)
        kind, message = answer
        assert kind == "timeout" and "took longer than" in message
        [line] = [r.getMessage() for r in caplog.records if r.name == "feeds.parse_pool"]
        assert f"pid={pid} killed" in line and "url=block" in line
        assert pool.pids == [] and not alive(pid), "killed and reaped"
        pool.deadline = 60.0
        assert await warm(pool) != pid  # the next job gets a fresh worker
    finally:
        await pool.close()
