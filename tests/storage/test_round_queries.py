"""What a poller reads at a round's start does not scan the timeline: each statement's SQLite
plan searches an index (a scan of `events` or `entries` costs about 0.2 s a statement at
1 M events, every round). A real SQLite file at head; the plans are SQLite's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, text

from tests.storage.test_storyline_subjects import add_event
from timeline.app.config import PollingSettings
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Entry
from timeline.usecases.polling import PollStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_a_round_start_reads_by_index_not_by_scanning_the_timeline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'timeline.db'}"
    await upgrade_async(url)
    db = Database(url)
    try:
        for i in range(30):
            at = NOW - timedelta(days=40) + timedelta(hours=32 * i)  # the last few within 72 h
            await add_event(db, (f"Story {i} about the Port of Rotterdam strike", "Text."), at=at)
        store = PollStore(db, PollingSettings(event_index_snapshot="", storyline_snapshot=""))
        await store.begin_round(NOW)  # the first load reads the windows whole
        (entry,) = await add_event(db, ("A new story about the strike", "More."), at=NOW)
        async with db.session() as s:
            new_event = await s.scalar(select(Entry.event_id).where(Entry.id == entry))
        statements: list[tuple[str, Any]] = []

        def seen(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                statements.append((statement, params))

        engine = db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", seen)
        try:
            await store.begin_round(NOW + timedelta(minutes=5))
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert new_event in store.storylines.index(0)  # it did read the new event
        async with db.engine.connect() as conn:
            plans = {
                statement: [
                    row[-1]
                    for row in (
                        await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
                    ).all()
                ]
                for statement, params in statements
            }
            indexes = (
                await conn.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
                    )
                )
            ).scalars()
            assert {"ix_events_created", "ix_events_updated"} <= set(indexes)
        scans = {
            statement: plan
            for statement, plan in plans.items()
            if any(step.startswith(("SCAN events", "SCAN entries")) for step in plan)
        }
        assert not scans
        assert any("ix_events_created" in step for plan in plans.values() for step in plan)
        assert any("ix_events_updated" in step for plan in plans.values() for step in plan)
    finally:
        await db.dispose()
