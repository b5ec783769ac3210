"""Run Alembic migrations from code (`timeline-bot db upgrade`, tests, the demo)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

import migrations
from timeline.storage.engine import normalise_url

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent

# Tables that migrations create but the models do not describe (full-text indexes).
IGNORED_TABLE_PREFIXES = ("entries_fts",)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave the full-text shadow tables out of autogenerate comparisons."""
    if type_ == "table" and name and name.startswith(IGNORED_TABLE_PREFIXES):
        return False
    return not (type_ == "index" and name and name.startswith(IGNORED_TABLE_PREFIXES))


def alembic_config(url: str) -> Config:
    """Build an Alembic config pointing at `migrations/` and `url`, no alembic.ini needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at `url` to `revision`."""
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    """Upgrade from inside a running event loop (Alembic's async env needs its own loop)."""
    await asyncio.to_thread(upgrade, url, revision)


async def downgrade_async(url: str, revision: str) -> None:
    """Downgrade from inside a running event loop."""
    await asyncio.to_thread(downgrade, url, revision)
