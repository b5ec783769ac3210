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
from sqlalchemy import Connection

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
