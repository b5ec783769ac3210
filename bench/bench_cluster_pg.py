"""Polling throughput: 1, 2 and 4 `poller` processes on PostgreSQL against one on SQLite.

Every setup runs real `timeline-bot poller` processes over the same feed farm (bench/farm.py,
in its own process). The database is migrated and the config synced before the pollers start;
the clock starts when every feed is made due (one UPDATE) and stops when every feed has its
fetch recorded. Round 1 is the cold one (every body is new: parse, dedup, cluster, ingest ~50
items per feed); round 2 follows `advance` (a share of the feeds publish 1-4 items, the rest
answer 304 or send identical bytes). SQLite runs one poller with the all-in-one batch (1000).

    python -m bench.bench_cluster_pg --feeds 500 --pollers 1,2,4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy import text

from bench.farm import WATCH_PHRASES, FarmConfig, FarmProcess
from timeline.app.config import load_settings
from timeline.app.wiring import prepare_database
from timeline.storage.engine import Database

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Result:
    setup: str
    pollers: int
    cold_seconds: float
    warm_seconds: float
    feeds: int
    entries: int

    def line(self) -> str:
        return (
            f"{self.setup:<16} pollers={self.pollers}  cold round {self.cold_seconds:6.2f} s "
            f"({self.feeds / self.cold_seconds:6.1f} feeds/s, {self.entries} entries)  "
            f"warm round {self.warm_seconds:5.2f} s ({self.feeds / self.warm_seconds:6.1f} feeds/s)"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(path: Path, url: str, urls: list[str], concurrency: int, port: int | None) -> None:
    feeds = "".join(f'[[feeds]]\nname = "News {i}"\nurl = "{u}"\n' for i, u in enumerate(urls))
    watches = "".join(
        f'[[watches]]\nname = "w{i}"\nquery = "{q}"\nchannel_id = {1000 + i}\n'
        for i, q in enumerate(WATCH_PHRASES)
    )
    metrics = f"[metrics]\nport = {port}\n" if port else ""
    path.write_text(
        f'[database]\nurl = "{url}"\n'
        "[polling]\ninterval_seconds = 3600\nmin_interval_seconds = 10\njitter = 0.0\n"
        f"tick_seconds = 0.2\nconcurrency = {concurrency}\ntimeout_seconds = 10.0\n"
        'lease_seconds = 60.0\nallow_private = ["127.0.0.1"]\n'
        f"{metrics}{feeds}{watches}"
    )


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _recorded(db: Database) -> int:

    async with db.session() as session:
        return int(await session.scalar(text("SELECT count(*) FROM fetch_results")) or 0)


async def _make_due(db: Database) -> None:

    async with db.session() as session:
        await session.execute(text("UPDATE feeds SET next_check_at = CURRENT_TIMESTAMP"))


async def _wait_healthy(ports: list[int], procs: list[subprocess.Popen[bytes]]) -> None:
    async with aiohttp.ClientSession() as http:
        for port in ports:
            while True:
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("a poller exited during start-up")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)


async def _round(db: Database, target: int, procs: list[subprocess.Popen[bytes]]) -> float:
    started = time.perf_counter()
    await _make_due(db)
    while await _recorded(db) < target:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a poller died")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


def _spawn(config: Path, log_path: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "timeline.cli.main", "--config", str(config), "poller", *extra],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def run_setup(
    setup: str, url: str, pollers: int, farm: FarmProcess, tmp: Path, concurrency: int
) -> Result:
    """Measure one setup: migrate, sync, start the pollers, time two rounds."""
    urls = farm.urls()
    config = tmp / f"{setup}-{pollers}.toml"
    _config(config, url, urls, concurrency, None)
    settings = load_settings(config)
    db = Database(url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await prepare_database(settings, db)
        async with db.session() as session:
            await session.execute(text("UPDATE feeds SET next_check_at = '2999-01-01'"))
        ports = [_free_port() for _ in range(pollers)]
        batch = ["--batch", "1000"] if setup == "sqlite" else []
        for n, port in enumerate(ports):
            own = tmp / f"{setup}-{pollers}-{n}.toml"
            _config(own, url, urls, concurrency, port)
            procs.append(_spawn(own, tmp / f"{setup}-{pollers}-{n}.log", batch))
        await _wait_healthy(ports, procs)
        cold = await _round(db, len(urls), procs)
        farm.control("advance", share=0.2)
        warm = await _round(db, 2 * len(urls), procs)

        async with db.session() as session:
            entries = int(await session.scalar(text("SELECT count(*) FROM entries")) or 0)
        return Result(setup, pollers, cold, warm, len(urls), entries)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        await db.dispose()


async def _main(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    config = FarmConfig(feeds=args.feeds, slow_share=args.slow_share)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if not args.skip_sqlite:
            # A fresh farm per setup: every setup sees the same bytes in the same rounds.
            with FarmProcess(config) as farm:
                url = f"sqlite:///{tmp / 'bench.db'}"
                results.append(await run_setup("sqlite", url, 1, farm, tmp, args.concurrency))
                print(results[-1].line(), flush=True)
        for pollers in args.pollers:
            name = f"tb_bench_cluster_{os.getpid()}_{pollers}"
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await _admin(f'CREATE DATABASE "{name}"')
            try:
                with FarmProcess(config) as farm:
                    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
                    result = await run_setup(
                        "postgresql", url, pollers, farm, tmp, args.concurrency
                    )
                    results.append(result)
                    print(result.line(), flush=True)
            finally:
                await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per setup (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--feeds", type=int, default=500, help="feeds in the farm (default 500)")
    parser.add_argument(
        "--pollers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 4],
        help="PostgreSQL poller counts, comma-separated (default 1,2,4)",
    )
    parser.add_argument("--concurrency", type=int, default=20, help="fetches per poller")
    parser.add_argument(
        "--slow-share", type=float, default=0.02, help="share of feeds that answer after 1.5 s"
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL setups only")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    print(f"{args.feeds} feeds, {os.cpu_count()} CPUs, concurrency {args.concurrency} per poller")
    results = asyncio.run(_main(args))
    if args.json:
        print(json.dumps([r.__dict__ for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
