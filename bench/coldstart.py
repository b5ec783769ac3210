"""Cold start: from process start to a poller's first round able to run, on a big database.

    .venv/bin/python -m bench.coldstart [--entries 1000000] [--every 5] [--db PATH] [--profile F]

Builds (once, kept at --db) a SQLite timeline of `--entries` entries, one event each, one entry
every `--every` seconds up to now (at 5 s, 51,840 of them in the 72-hour clustering window),
then starts a fresh process that opens the database and runs `PollStore.begin_round` (watches,
event index, storylines): the time from before that process is started to the end of
`begin_round` is the cold start. A start from a snapshot builds the storyline indexes in a
thread while the first round runs (ingest waits for them before placing an event): when they
are ready is printed too. Its rows are written directly (no stored storyline subjects,
as by a version before those): the first start computes and stores them, later starts read
them; the output says which it was. Prints figures (wall, and the measured process's CPU
and peak RSS); never asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def insert_rows(
    con: sqlite3.Connection, events: list[tuple[Any, ...]], rows: list[tuple[Any, ...]]
) -> None:
    """Insert event rows (id, guild, title, link, occurred_at, manual, created_at, updated_at)
    and entry rows (feed, event, key, title, summary, link, published = first seen)."""
    con.executemany(
        "INSERT INTO events (id, guild_id, title, link, occurred_at, manual, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        events,
    )
    con.executemany(
        "INSERT INTO entries (feed_id, event_id, key, title, summary, link, tags, "
        "published_at, published_is_estimated, first_seen_at) "
        "VALUES (?, ?, ?, ?, ?, ?, '[]', ?7, 0, ?7)",
        rows,
    )


def build(path: Path, entries: int, every: float) -> None:
    """Write the database (skipped if it exists)."""
    # Not at the top: the measured process imports this module and must not pay for these.
    from bench.bench_query import Corpus, make_vocab  # noqa: PLC0415
    from timeline.storage.migrate import upgrade  # noqa: PLC0415

    rng = random.Random(7)
    corpus = Corpus(rng, make_vocab(rng))
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    upgrade(f"sqlite:///{tmp}")
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA synchronous=OFF")
    con.execute(
        "INSERT INTO feeds (id, guild_id, name, url, tags, origin, enabled, next_check_at, "
        "error_count, status, backfilled, created_at) VALUES "
        "(1, 0, 'Wire', 'https://wire.example/rss', '[]', 'config', 1, '2024-01-01 00:00:00', "
        "0, 'ok', 1, '2024-01-01 00:00:00')"
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    events, rows = [], []
    for i in range(entries):
        seen = now - timedelta(seconds=(entries - i) * every)
        stamp = seen.strftime("%Y-%m-%d %H:%M:%S.%f")
        title = corpus.text(10)
        link = f"https://wire.example/{i}"
        events.append((i + 1, 0, title, link, stamp, 0, stamp, stamp))
        rows.append((1, i + 1, f"k{i}", title, corpus.text(rng.randint(25, 45)), link, stamp))
        if len(rows) == 20_000 or i == entries - 1:
            insert_rows(con, events, rows)
            events, rows = [], []
    con.execute("DELETE FROM entries_fts_pending")
    con.commit()
    con.close()
    tmp.rename(path)


async def _first_round_ready(
    path: Path, profile: str | None, snapshot: bool = True
) -> dict[str, Any]:
    """In the measured process: open the database and run a poller's begin_round."""
    started = time.time()
    from timeline.app.config import PollingSettings  # noqa: PLC0415 (timed: the imports are part of the cold start)
    from timeline.storage.engine import Database  # noqa: PLC0415 (timed: the imports are part of the cold start)
    from timeline.usecases.polling import PollStore  # noqa: PLC0415 (timed: the imports are part of the cold start)

    imported = time.time()
    db = Database(f"sqlite:///{path}")
    setting = "auto" if snapshot else ""
    store = PollStore(db, PollingSettings(storyline_snapshot=setting, event_index_snapshot=setting))
    # begin_round loads the event index (clustering: its snapshot, then what was stored
    # since), then refreshes the storyline cache: time the parts apart (wrapped on this
    # instance only).
    spent: dict[str, float] = {}

    def timed(name: str, call: Any) -> Any:
        async def run(*args: Any) -> Any:
            began = time.perf_counter()
            try:
                return await call(*args)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - began

        return run

    store.storylines.refresh = timed("storylines", store.storylines.refresh)  # type: ignore[method-assign]
    store.event_snapshot.load = timed("events_snapshot", store.event_snapshot.load)  # type: ignore[method-assign]
    profiler = None
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
    now = datetime.now(UTC)
    await store.begin_round(now)
    ready = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # A start from a snapshot builds the storyline indexes in a thread while its first round
    # runs (ingest waits for them before placing an event): when they are ready, with nothing
    # else running here.
    background = store.storylines._pending is not None
    async with db.session() as session:
        await store.storylines.ready(session, now)
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    storylines_ready = time.time()
    after = resource.getrusage(resource.RUSAGE_SELF)
    indexed = sum(len(index) for index in store.events.values())
    await db.dispose()
    return {
        "main_started": started,
        "imported": imported,
        "ready": ready,
        "storylines_ready": storylines_ready,
        "background": background,
        "indexed": indexed,
        "storylines_s": spent.get("storylines", 0.0),
        "events_snapshot_s": spent.get("events_snapshot", 0.0),
        # How the indexes were loaded: from the snapshot, or the whole window read.
        "loaded": store.storylines.loaded,
        "events_loaded": store.event_snapshot.loaded,
        # CPU of the whole measured process (interpreter start included) to the first round
        # able to run, and to the storyline indexes ready; peak RSS.
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "cpu_storylines_s": after.ru_utime + after.ru_stime,
        "maxrss_mb": after.ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    """Build the database if needed, then measure one cold start in a fresh process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between entries")
    parser.add_argument("--db", type=Path, help="default: /tmp/timeline-bench/cold_N.db")
    parser.add_argument("--profile", help="write a cProfile of begin_round to this file")
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="read the windows from the database (not from, nor into, the snapshots)",
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    db = args.db or Path(f"/tmp/timeline-bench/cold_{args.entries}_{args.every:g}.db")
    if args.measure:
        got = asyncio.run(_first_round_ready(db, args.profile, not args.no_snapshot))
        print(json.dumps(got))
        return 0
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build(db, args.entries, args.every)
        print(
            f"built {db} ({db.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s"
        )
    else:
        # A database built by an earlier version: migrated as `timeline-bot db upgrade` would.
        from timeline.storage.migrate import upgrade  # noqa: PLC0415

        upgrade(f"sqlite:///{db}")
    # Ingest stores each new event's storyline subject with its entry; this database's rows
    # were written directly (as by a version before that), so the first start computes them
    # and stores them, and the starts after it read them: say which this one is.
    with sqlite3.connect(db) as con:
        (stored,) = con.execute("SELECT count(*) FROM entries WHERE subject IS NOT NULL").fetchone()
    print(f"stored subjects before this start: {stored:,}")
    # The entries end when the database was built: the window holds fewer of them later.
    cmd = [sys.executable, "-m", "bench.coldstart", "--measure", "--db", str(db)]
    cmd += ["--entries", str(args.entries), "--every", str(args.every)]
    if args.profile:
        cmd += ["--profile", args.profile]
    if args.no_snapshot:
        cmd += ["--no-snapshot"]
    snapshot = db.with_name(f"{db.name}-storylines.npz")
    events_snapshot = db.with_name(f"{db.name}-events.npz")
    before = time.time()
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    got = json.loads(out.splitlines()[-1])
    print(
        f"cold start over {args.entries:,} entries: {got['ready'] - before:.2f} s from process "
        f"start to the first round able to run (interpreter {got['main_started'] - before:.2f} s, "
        f"imports {got['imported'] - got['main_started']:.2f} s, begin_round "
        f"{got['ready'] - got['imported']:.2f} s: the event index of {got['indexed']:,} entries, "
        f"loaded from the {got['events_loaded']} (its snapshot's part "
        f"{got['events_snapshot_s']:.2f} s), and the watches); CPU {got['cpu_s']:.2f} s. The "
        f"storyline cache (loaded from the {got['loaded']}"
        f"{', built in the background as the first round starts' if got['background'] else ''})"
        f" ready {got['storylines_ready'] - before:.2f} s after process start (its load "
        f"{got['storylines_s']:.2f} s); CPU {got['cpu_storylines_s']:.2f} s, peak RSS "
        f"{got['maxrss_mb']:.0f} MB; load {'/'.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for file in (snapshot, events_snapshot):
        if file.exists() and not args.no_snapshot:
            print(f"snapshot: {file} ({file.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
