"""`timeline-bot db copy`: a polled SQLite timeline moved to PostgreSQL, whole and usable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.helpers import FeedServer, rss
from tests.scaleout.conftest import make_pg_database
from timeline.app.config import DatabaseSettings, FeedConfig, PollingSettings, Settings, WatchConfig
from timeline.app.wiring import App
from timeline.cli.main import main
from timeline.domain.errors import Conflict, TimelineError
from timeline.domain.query import parse_query
from timeline.storage.copy import copy_database, tables
from timeline.storage.engine import Database
from timeline.storage.models import Event
from timeline.storage.search import search_entries

pytestmark = pytest.mark.postgres

STORIES = [
    ("bbg-1", "NATO draft communique calls out China", "Dual-use military-civilian materials."),
    ("bbg-2", "Oil holds gains as traders weigh supply", "Brent steadied."),
    ("bbg-3", "Senators urge review of drone exports", "Export controls on drones."),
]


@pytest.fixture(scope="module")
def target_url() -> Iterator[str]:
    # Not migrated: the copy migrates its target itself.
    yield from make_pg_database(f"tb_cluster_dbcopy_target_{os.getpid()}", migrate=False)


async def polled_sqlite(tmp_path: Path, server: FeedServer) -> str:
    server.bodies["/a.xml"] = rss(*STORIES)
    server.bodies["/b.xml"] = rss(("r-1", "NATO communique: allies back Ukraine", "Reuters."))
    url = f"sqlite:///{tmp_path / 'source.db'}"
    settings = Settings(
        database=DatabaseSettings(url),
        polling=replace(
            PollingSettings(), allow_private=("127.0.0.1",), alert_on_first_poll=True, jitter=0.0
        ),
        feeds=(
            FeedConfig("Bloomberg", server.url("/a.xml")),
            FeedConfig("Reuters", server.url("/b.xml")),
        ),
        watches=(WatchConfig("nato", "NATO communique", 42),),
        aliases={"china": "China OR Beijing"},
    )
    async with App(settings) as app:
        await app.prepare()
        report = await app.poll_once()
    assert report.outcomes and not report.errors
    return url


async def counts(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.session() as session:
            return {
                t.name: int(await session.scalar(select(func.count()).select_from(t)) or 0)
                for t in tables()
            }
    finally:
        await db.dispose()


async def test_copy_moves_every_row_resets_sequences_and_rebuilds_search(
    tmp_path: Path, feed_server: FeedServer, target_url: str
) -> None:
    source = await polled_sqlite(tmp_path, feed_server)
    report = await copy_database(source, target_url, batch=2)  # batches smaller than tables
    expected = await counts(source)
    assert expected["entries"] == 4 and expected["alerts"] >= 1 and expected["fetch_results"] == 2
    assert await counts(target_url) == expected
    assert report.tables == expected and report.indexed == 4

    db = Database(target_url)
    try:
        async with db.session() as session:
            hits = await search_entries(session, parse_query("drone exports"), guild_ids=None)
            assert [h.title for h in hits] == ["Senators urge review of drone exports"]
            top = await session.scalar(select(func.max(Event.id)))
            event = Event(title="Manual", occurred_at=hits[0].published_at)
            session.add(event)
            await session.flush()
            assert event.id == (top or 0) + 1  # the sequence continues after the copied ids
    finally:
        await db.dispose()

    # A second copy onto the now non-empty target is refused; --force replaces it.
    with pytest.raises(Conflict, match="already holds data"):
        await copy_database(source, target_url)
    forced = await copy_database(source, target_url, force=True)
    assert forced.emptied and await counts(target_url) == expected


def test_cli_copy_refuses_a_non_empty_target_and_bad_input(
    tmp_path: Path, target_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    assert main(["db", "copy", "--from", missing, "--to", target_url]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()  # nothing created on the way

    assert main(["db", "copy", "--from", target_url, "--to", target_url]) == 1
    assert "same database" in capsys.readouterr().err
    assert main(["db", "copy", "--from", "mysql://x/y", "--to", target_url]) == 1
    assert "sqlite:/// or postgresql://" in capsys.readouterr().err
    assert main(["db", "copy", "--from", target_url, "--to", "postgresql://"]) == 1
    assert "names no database" in capsys.readouterr().err


async def test_copy_refuses_a_source_without_the_schema(tmp_path: Path, target_url: str) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(TimelineError, match="no timeline schema"):
        await copy_database(f"sqlite:///{empty}", target_url)
