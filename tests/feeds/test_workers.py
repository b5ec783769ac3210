"""The parse worker pool with real worker processes: results, deaths, cancellation, shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import feeds
from feeds.parse import ParsedFeed, parse_job
from feeds.workers import (
    WORKER_DIED,
    ParseWorkerError,
    ParseWorkerPool,
    PoolClosed,
    worker_command,
    worker_environment,
)
from tests.feeds.conftest import fixture_bytes

NOW = datetime(2024, 7, 12, 8, 0, tzinfo=UTC)
FEED_URL = "https://feeds.example.com/news.xml"
RSS = {"Content-Type": "application/rss+xml"}
HEAVY_MODULES = ("aiohttp", "sqlalchemy", "numpy", "discord", "timeline", "cli", "bot", "yarl")


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
    running = ParseWorkerPool(1, test_hooks=True)
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
        if any(w.busy for w in pool._workers):
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
    modules = await pool.run_test_hook("modules")
    assert isinstance(modules, list)
    assert "feedparser" in modules and "feeds.parse" in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY_MODULES] == []
    assert "feeds.fetch" not in modules and "multiprocessing" not in modules


async def test_a_worker_killed_mid_job_fails_that_job_only(
    pool: ParseWorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    first = await warm(pool)
    with caplog.at_level(logging.ERROR, logger="feeds.workers"):
        assert await pool.run_test_hook("sigkill") == WORKER_DIED  # kills itself with SIGKILL
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "died while parsing url=test-hook:sigkill" in error.getMessage()
    assert "-9" in error.getMessage()
    assert pool.pids == [] and not alive(first), "the dead worker was reaped"
    second = await warm(pool)  # the next job gets a fresh worker
    assert second != first


async def test_an_exception_in_the_parse_is_raised_and_the_worker_kept(
    pool: ParseWorkerPool,
) -> None:
    pid = await warm(pool)
    with pytest.raises(ParseWorkerError, match="RuntimeError: a test hook raised"):
        await pool.run_test_hook("raise")
    assert pool.pids == [pid]
    assert await warm(pool) == pid


async def test_cancelling_a_job_kills_its_worker(pool: ParseWorkerPool) -> None:
    pid = await warm(pool)
    job = asyncio.create_task(pool.run_test_hook("block"))  # the worker never answers
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


def test_the_worker_exits_when_its_stdin_closes(tmp_path: Path) -> None:
    done = subprocess.run(
        worker_command(), input=b"", env=worker_environment(), cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0


def test_the_worker_environment_puts_the_source_first(monkeypatch: pytest.MonkeyPatch) -> None:
    root = str(Path(feeds.__file__).resolve().parent.parent)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert worker_environment()["PYTHONPATH"] == root
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert worker_environment()["PYTHONPATH"] == f"{root}{os.pathsep}/elsewhere"
    # An installed package needs nothing, and site-packages must not go before the stdlib.
    installed = "/usr/lib/python3.11/site-packages"
    assert worker_environment(installed)["PYTHONPATH"] == "/elsewhere"
    monkeypatch.delenv("PYTHONPATH")
    assert "PYTHONPATH" not in worker_environment(installed)


async def test_a_parse_past_its_deadline_is_stopped_and_its_worker_killed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ParseWorkerPool(1, test_hooks=True)
    try:
        pid = await warm(pool)  # (the worker's start-up, its imports, under the default)
        pool.deadline = 0.2  # the "block" hook never answers: any deadline is passed
        with caplog.at_level(logging.INFO, logger="feeds.workers"):
            answer = await pool.run_test_hook("block")
        assert isinstance(answer, tuple)
        kind, message = answer
        assert kind == "timeout" and "took longer than" in message
        [line] = [r.getMessage() for r in caplog.records if r.name == "feeds.workers"]
        assert f"pid={pid} killed" in line and "url=test-hook:block" in line
        assert pool.pids == [] and not alive(pid), "killed and reaped"
        pool.deadline = 60.0
        assert await warm(pool) != pid  # the next job gets a fresh worker
    finally:
        await pool.close()
