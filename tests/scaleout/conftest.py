"""Cluster-test fixtures: a PostgreSQL database of the test module's own, migrated to head.

Each module gets `tb_cluster_<module>_<pid>` created through asyncpg on the `test` database and
dropped WITH (FORCE) at the end, so processes a test killed cannot keep it alive.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from tests.helpers import postgres_unreachable
from timeline.storage.migrate import upgrade

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def pg_admin(statement: str) -> None:
    """Run one statement on the admin database."""
    import asyncpg  # noqa: PLC0415 (the PostgreSQL driver is optional)

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def make_pg_database(name: str, *, migrate: bool = True) -> Iterator[str]:
    """Create database `name` (dropping a leftover), yield its URL, drop it after."""
    try:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, ImportError) as exc:
        postgres_unreachable(exc)
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated PostgreSQL database for this test module."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    yield from make_pg_database(f"tb_cluster_{module}_{os.getpid()}")
