"""Where a cold storyline load spends its time: database read, subject decoding, index add.

    .venv/bin/python -m bench.refresh_split [--db /tmp/timeline-bench/cold_1000000_5.db]

Runs the storyline cache's first-load query (`StorylineCache.refresh`, captured as it runs)
on the cold-start bench's database and times, in CPU seconds of this process, reading its
rows through the async engine, decoding the stored subjects (`decode_subject`, else
computing them) and adding them to a `StorylineIndex`, apart. Prints figures; never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from timeline.domain.storylines import StorylineIndex, Subject, decode_subject, subject
from timeline.storage.engine import Database
from timeline.storage.storylines import StorylineCache


async def split(path: Path) -> None:
    """Capture the first-load query, then time its parts."""
    db = Database(f"sqlite:///{path}")
    now = datetime.now().astimezone()
    captured: list[Any] = []
    original = StorylineCache.refresh

    async def capture(self: StorylineCache, session: Any, at: datetime) -> int:
        real = session.stream

        async def stream(query: Any) -> Any:
            captured.append(query)
            return await real(query)

        session.stream = stream
        try:
            return await original(self, session, at)
        finally:
            del session.stream

    gc.disable()  # as the load runs (see timeline.storage.bulk)
    cpu = time.process_time()
    async with db.session() as session:
        StorylineCache.refresh = capture  # type: ignore[method-assign,assignment]
        try:
            await StorylineCache().refresh(session, now)
        finally:
            StorylineCache.refresh = original  # type: ignore[method-assign]
    whole = time.process_time() - cpu
    rows: list[Any] = []
    cpu = time.process_time()
    async with db.session() as session:
        result = await session.stream(captured[0])
        async for batch in result.partitions():
            rows.extend(batch)
    read = time.process_time() - cpu
    cpu = time.process_time()
    subjects: list[Subject] = []
    stored = 0
    for row in rows:
        got = decode_subject(row[7])
        if got is None:
            got = subject(row[8], row[9] or "")
        else:
            stored += 1
        subjects.append(got)
    decode = time.process_time() - cpu
    index = StorylineIndex()
    cpu = time.process_time()
    for row, subj in zip(rows, subjects, strict=True):
        index.add(row[0], row[2], subj, row[3])
    add = time.process_time() - cpu
    await db.dispose()
    n = max(1, len(rows))
    print(
        f"{len(rows):,} events ({stored:,} stored subjects): refresh {whole:.1f} s CPU; apart: "
        f"read {read:.1f} s ({read / n * 1e6:.0f} us/event), decode {decode:.1f} s "
        f"({decode / n * 1e6:.0f} us), index add {add:.1f} s ({add / n * 1e6:.0f} us); "
        f"load {'/'.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


def main(argv: list[str] | None = None) -> int:
    """Time the parts of a first storyline load on the cold-start database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", type=Path, default=Path("/tmp/timeline-bench/cold_1000000_5.db"))
    args = parser.parse_args(argv)
    asyncio.run(split(args.db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
