"""Alembic owns the schema: a fresh database upgraded to head matches the models exactly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from timeline.storage.engine import make_engine
from timeline.storage.migrate import downgrade_async, include_object, upgrade_async
from timeline.storage.models import Base

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn: Connection) -> list[object]:
                context = MigrationContext.configure(
                    sync_conn, opts={"compare_type": True, "include_object": include_object}
                )
                diff: list[object] = compare_metadata(context, Base.metadata)  # typed Any
                return diff

            return list(await conn.run_sync(compare))
    finally:
        await engine.dispose()


async def test_sqlite_upgrade_matches_models_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    await upgrade_async(url)
    assert await schema_diff(url) == []
    await downgrade_async(url, "base")
    await upgrade_async(url)
    assert await schema_diff(url) == []


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    name = f"tb_migr_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.postgres
async def test_postgres_upgrade_matches_models(pg_url: str) -> None:
    await upgrade_async(pg_url)
    assert await schema_diff(pg_url) == []
    await downgrade_async(pg_url, "base")
    await upgrade_async(pg_url)
    assert await schema_diff(pg_url) == []


def test_the_alembic_command_migrates_the_configured_database_and_sees_no_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`alembic upgrade head` / `alembic check` with the repository's alembic.ini, as a
    developer writing a migration runs them (the URL from $TIMELINE_BOT_DATABASE_URL)."""

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("TIMELINE_BOT_DATABASE_URL", f"sqlite:///{tmp_path / 'dev.db'}")
    cfg = Config(str(root / "alembic.ini"))
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")
    command.check(cfg)  # raises when the models and the migrations disagree
    assert (tmp_path / "dev.db").exists()


async def _entries_across_0012(url: str) -> None:
    """0011 -> head keeps the entries (subject NULL, then writable); back to 0011 keeps them
    without the column."""
    await upgrade_async(url, "0011")
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO feeds (id, guild_id, name, url, tags, origin, enabled, "
                    "next_check_at, error_count, status, backfilled, created_at) VALUES "
                    "(1, 0, 'Wire', 'https://wire.example/rss', '[]', 'config', true, "
                    "'2026-01-01 00:00:00', 0, 'ok', true, '2026-01-01 00:00:00')"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO entries (id, feed_id, key, title, summary, tags, published_at, "
                    "published_is_estimated, first_seen_at) VALUES (7, 1, 'k', 'Volcano', 's', "
                    "'[]', '2026-01-01 00:00:00', false, '2026-01-01 00:00:00')"
                )
            )
        await upgrade_async(url)
        async with engine.begin() as conn:
            got = (await conn.execute(text("SELECT id, subject FROM entries"))).all()
            assert [tuple(row) for row in got] == [(7, None)]
            await conn.execute(text("UPDATE entries SET subject = '1|volcano|b|i|Volcano'"))
        await downgrade_async(url, "0011")
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT * FROM entries"))).mappings().all()
        assert [(r["id"], r["title"]) for r in rows] == [(7, "Volcano")]
        assert "subject" not in rows[0]
    finally:
        await engine.dispose()


async def test_sqlite_0012_adds_and_drops_the_stored_subject_keeping_entries(
    tmp_path: Path,
) -> None:
    await _entries_across_0012(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_postgres_0012_adds_and_drops_the_stored_subject_keeping_entries(
    pg_url: str,
) -> None:
    await _entries_across_0012(pg_url)
