"""Service-test fixtures: a migrated database per test, on SQLite and on PostgreSQL.

SQLite: one migrated template file per session, copied for each test (Alembic is the slow
part). PostgreSQL: one database of our own per session, emptied with TRUNCATE before each test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.helpers import postgres_unreachable
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


async def _pg_admin(statement: str) -> None:
    import asyncpg  # noqa: PLC0415 (the PostgreSQL driver is optional)

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database of our own for the session (dropped at the end)."""
    name = f"tb_services_{os.getpid()}"
    try:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, ImportError) as exc:
        postgres_unreachable(exc)
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh migrated database URL (a sync fixture: the session fixtures run Alembic's loop)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("template_db")
        target = tmp_path / "timeline.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def sdb(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    if database.dialect == "postgresql":
        async with database.session() as session:
            tables = (
                await session.scalars(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            ).all()
            await session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    try:
        yield database
    finally:
        await database.dispose()
