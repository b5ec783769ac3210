"""Service-test fixtures: a migrated SQLite file per test (copied from one migrated template)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from timeline.db import Database
from timeline.migrate import upgrade


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once per session; each test gets a copy (Alembic is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
async def sdb(tmp_path: Path, template_db: Path) -> AsyncIterator[Database]:
    target = tmp_path / "timeline.db"
    shutil.copyfile(template_db, target)
    database = Database(f"sqlite:///{target}")
    try:
        yield database
    finally:
        await database.dispose()
