"""The benchmark harness at tiny sizes (figures are printed, never asserted on time).

Also the two product changes the harness led to: parsing in worker processes
(`FetchSettings.parse_workers`) and the group commit of fetches without items in `PollStore`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.__main__ import main as bench_main
from bench.alerts import AlertConfig, run_alerts
from bench.baseline import BaselineConfig, run_baseline
from bench.fair import FairConfig, run_fair
from bench.farm import FarmConfig, FarmProcess
from bench.measure import descendants, percentile
from bench.poll import PollConfig, run_poll
from bench.spread import run as run_spread
from feeds.fetch import Fetcher, FetchSettings
from feeds.types import FetchResult, FetchState
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.models import Feed, FetchLog
from timeline.usecases.polling import PollStore

# Half the feeds fail, one of each kind: HTTP 500, 503, 404 and an HTML page.
TINY = FarmConfig(feeds=8, items=6, ports=2, slow_share=0.0, failing_share=0.5, bait_share=0.5)
HEALTHY = 4


@pytest.fixture(scope="module")
def farm() -> Iterator[FarmProcess]:
    with FarmProcess(TINY) as running:
        yield running


def fetch_settings(**overrides: object) -> FetchSettings:
    return FetchSettings(allow_private=("127.0.0.1",), timeout_seconds=10.0, **overrides)  # type: ignore[arg-type]


async def test_farm_answers_conditional_get_and_changes_on_advance(farm: FarmProcess) -> None:
    kinds = farm.control("stats")["feed_kinds"]
    url = farm.url(kinds.index("ok"))
    async with Fetcher(fetch_settings()) as fetcher:
        first = await fetcher.fetch(FetchState(url))
        assert first.outcome == "ok" and len(first.items) == TINY.items
        second = await fetcher.fetch(first.state)
        assert second.outcome in ("not_modified", "unchanged")
    changed = farm.control("advance", share=1.0)
    assert changed["changed"] == HEALTHY  # failing feeds never change
    async with Fetcher(fetch_settings()) as fetcher:
        third = await fetcher.fetch(first.state)
    assert third.outcome == "ok"
    assert {i.key for i in third.items} - {i.key for i in first.items}


async def test_parse_workers_give_the_same_items_and_errors_as_a_thread(
    farm: FarmProcess,
) -> None:
    urls = farm.urls()
    async with Fetcher(fetch_settings()) as threaded:
        expected = [await threaded.fetch(FetchState(u)) for u in urls]
    async with Fetcher(fetch_settings(parse_workers=1)) as pooled:
        got = [await pooled.fetch(FetchState(u)) for u in urls]
        assert pooled._pool is not None
        workers = pooled._pool.pids
        assert len(workers) == 1
        assert workers[0] in descendants() and _is_parse_worker(workers[0])
    assert workers[0] not in descendants(), "close() shut the worker down"
    assert [(r.outcome, r.error_kind, r.items) for r in got] == [
        (r.outcome, r.error_kind, r.items) for r in expected
    ]
    assert "not_feed" in {r.error_kind for r in got}  # the farm's HTML page, parsed in a worker


def _is_parse_worker(pid: int) -> bool:
    try:
        return b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def test_group_commit_records_every_concurrent_fetch(db: Database) -> None:
    due_at = datetime.now(UTC) - timedelta(seconds=1)
    async with db.session() as session:
        session.add_all(
            Feed(name=f"F{i}", url=f"http://127.0.0.1:9/{i}", next_check_at=due_at)
            for i in range(30)
        )
    store = PollStore(db, PollingSettings(jitter=0.0, failing_after=1))
    claimed = await store.claim_due()
    outcomes = ["not_modified", "unchanged", "error"]
    results = [
        FetchResult(
            url=d.state.url,
            outcome=outcomes[i % 3],
            state=d.state,
            error="HTTP 500" if i % 3 == 2 else None,
            error_kind="http" if i % 3 == 2 else None,
        )
        for i, d in enumerate(claimed)
    ]
    recorded = await asyncio.gather(
        *(store.record(d, r) for d, r in zip(claimed, results, strict=True))
    )
    assert [o.outcome for o in recorded] == [r.outcome for r in results]
    async with db.session() as session:
        feeds = (await session.scalars(select(Feed).order_by(Feed.id))).all()
        logs = await session.scalar(select(func.count()).select_from(FetchLog))
    assert logs == 30
    assert all(f.lease_owner is None and f.last_checked_at is not None for f in feeds)
    assert [f.status for f in feeds] == [("failing" if i % 3 == 2 else "ok") for i in range(30)]
    assert store.held == set()


async def test_poll_phase_reports_rounds_and_resources(tmp_path: Path, farm: FarmProcess) -> None:
    figures = await run_poll(
        PollConfig(
            ports=farm.ports,
            feeds=TINY.feeds,
            db_path=str(tmp_path / "poll.db"),
            rounds=2,
            parse_workers=1,
        )
    )
    backfill, *steady = figures["rounds"]
    assert backfill["round"] == "backfill" and backfill["new_items"] > 0
    assert len(steady) == 2
    for r in steady:
        # Every new item the farm published on a healthy feed is stored, exactly once.
        assert r["new_items"] == r["farm_new_items"]
        assert r["outcomes"].get("error") == TINY.feeds - HEALTHY
    assert figures["peak_rss_mb"] > 0 and figures["peak_processes"] >= 2


def test_baseline_reads_every_feed_every_round(farm: FarmProcess) -> None:
    figures = run_baseline(BaselineConfig(ports=farm.ports, feeds=TINY.feeds, rounds=2))
    first, second = figures["rounds"]
    assert first["items_parsed"] == second["items_parsed"] == HEALTHY * TINY.items
    assert second["new_items"] == second["farm_new_items"] > 0
    assert first["failed_feeds"] == second["failed_feeds"] == TINY.feeds - HEALTHY


def test_fair_baseline_uses_conditional_get_and_stores_each_new_item_once(
    tmp_path: Path, farm: FarmProcess
) -> None:
    figures = run_fair(
        FairConfig(ports=farm.ports, feeds=TINY.feeds, db_path=str(tmp_path / "f.db"), rounds=2)
    )
    for r in figures["rounds"]:
        # HTTP 500, 503 and 404 fail; the HTML page is fetched and yields no items.
        assert r["failed"] == TINY.feeds - HEALTHY - 1
        assert r["fetched"] + r["not_modified"] + r["failed"] == TINY.feeds
        assert r["new"] == r["farm_new_items"]
    assert sum(r["not_modified"] for r in figures["rounds"]) > 0


async def test_alert_latency_phase_sees_the_message_in_the_emulator(
    tmp_path: Path, farm: FarmProcess
) -> None:
    figures = await run_alerts(
        AlertConfig(
            ports=farm.ports,
            feeds=TINY.feeds,
            db_path=str(tmp_path / "alerts.db"),
            trials=1,
            parse_workers=0,
        )
    )
    (trial,) = figures["trials"]
    assert trial["from_round_start_s"] >= trial["from_commit_s"] >= 0


def test_harness_writes_results_with_the_ratio(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    assert bench_main(["--quick", "--feeds", "6", "--rounds", "1", "--only", "poll", "baseline",
                       "--out", str(out)]) == 0  # fmt: skip
    results = json.loads(out.read_text())
    assert results["poll"]["feeds"] == 6 and results["baseline"]["feeds"] == 6
    assert results["ratio"]["feeds_per_s"] > 0
    assert results["farm"]["stats"]["requests"]["304"] > 0


def test_percentile_interpolates() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0, 1.0], 100) == 5.0


@pytest.mark.parametrize("workers", [0, 1], ids=["thread", "worker"])
async def test_skip_seen_items_parses_only_what_the_stored_body_lacked(
    farm: FarmProcess, workers: int
) -> None:
    url = farm.url(farm.control("stats")["feed_kinds"].index("ok"))
    settings = fetch_settings(skip_seen_items=True, parse_workers=workers)
    async with Fetcher(settings) as fetcher:
        first = await fetcher.fetch(FetchState(url))
        assert len(first.items) == TINY.items  # nothing seen yet: the whole body
        farm.control(
            "inject", feed=int(url.rsplit("/", 1)[1].split(".")[0]), title="New", summary="s"
        )
        second = await fetcher.fetch(first.state)
        # A state whose body hash is not the one remembered: parse everything again.
        other = await fetcher.fetch(FetchState(url, body_hash="0" * 64))
        # With a worker, the cut was made and parsed there (`parse_changed_job`).
        assert (fetcher._pool is not None and len(fetcher._pool.pids) == 1) == bool(workers)
    async with Fetcher(fetch_settings()) as plain:
        full = await plain.fetch(FetchState(url))
    assert [i.title for i in second.items] == ["New"]
    assert second.items == [i for i in full.items if i.key not in {j.key for j in first.items}]
    assert other.items == full.items


async def test_group_commit_hands_over_when_the_committer_is_cancelled(db: Database) -> None:
    due_at = datetime.now(UTC) - timedelta(seconds=1)
    async with db.session() as session:
        session.add_all(
            Feed(name=f"F{i}", url=f"http://127.0.0.1:9/{i}", next_check_at=due_at)
            for i in range(5)
        )
    store = PollStore(db, PollingSettings(jitter=0.0))
    claimed = await store.claim_due()
    await store.begin_round()
    tasks = [
        asyncio.create_task(
            store.record(d, FetchResult(url=d.state.url, outcome="not_modified", state=d.state))
        )
        for d in claimed
    ]
    await asyncio.sleep(0)  # one turn: the first task is committing, the others queued
    tasks[0].cancel()
    async with asyncio.timeout(30):  # nobody may be left waiting
        done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert [o.outcome for o in done[1:]] == ["not_modified"] * 4  # type: ignore[union-attr]
    async with db.session() as session:
        logged = set((await session.scalars(select(FetchLog.feed_id))).all())
        leased = (await session.scalars(select(Feed).where(Feed.lease_owner.is_not(None)))).all()
    assert logged == {d.id for d in claimed[1:]}
    assert leased == []  # the cancelled one was handed back too


def test_spread_bench_runs_the_three_ways_at_a_tiny_size() -> None:

    result = asyncio.run(run_spread(feeds=6, per_feed=3, repeats=1))
    events = result["events"]
    assert isinstance(events, dict)
    assert set(events) == {"one round", "two rounds", "killed round"}
    assert all(0 < n[0] <= 18 for n in events.values())
    assert result["items"] == 18
