"""Copy a whole timeline database to another one: SQLite to PostgreSQL (or any way round).

`timeline-bot db copy --from URL --to URL` is how a deployment outgrows SQLite. The target is
migrated to head first, so the schema is the one Alembic makes; then every table the models
describe is copied in foreign-key order, in batches, inside one target transaction (all or
nothing). PostgreSQL sequences are moved past the copied ids, so the next insert does not
collide. The full-text tables (`entries_fts*`) are not copied: the target's triggers queue every
copied entry and `sync_search_index` rebuilds the index with the target's own tokeniser.

A target that already holds rows is refused unless `force=True`, which empties it first.
Stop the bot's processes while copying: rows written to the source meanwhile are not copied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Table, delete, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.app.config import redact_url
from timeline.domain.errors import Conflict, TimelineError
from timeline.storage.engine import Database, normalise_url
from timeline.storage.migrate import alembic_config, upgrade_async
from timeline.storage.models import Base
from timeline.storage.search import sync_search_index

log = logging.getLogger(__name__)

DEFAULT_BATCH = 2000


@dataclass(slots=True)
class CopyReport:
    """What a copy did: rows per table, entries indexed for search, wall time."""

    tables: dict[str, int] = field(default_factory=dict)
    indexed: int = 0
    emptied: bool = False
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows copied over all tables."""
        return sum(self.tables.values())


def tables() -> list[Table]:
    """The tables copied, parents before children (foreign-key order)."""
    return list(Base.metadata.sorted_tables)


def _check_urls(source_url: str, target_url: str) -> None:
    for name, url in (("source", source_url), ("target", target_url)):
        try:
            backend = make_url(normalise_url(url)).get_backend_name()
        except Exception:
            raise TimelineError(f"the {name} is not a database URL: {redact_url(url)!r}") from None
        if backend not in ("sqlite", "postgresql"):
            raise TimelineError(f"the {name} must be a sqlite:/// or postgresql:// URL")
        if backend == "postgresql" and not make_url(normalise_url(url)).database:
            # libpq would fall back to a database named after the user: never guess a target.
            raise TimelineError(f"the {name} URL names no database: {redact_url(url)!r}")
    if normalise_url(source_url) == normalise_url(target_url):
        raise TimelineError("the source and the target are the same database")
    source = make_url(normalise_url(source_url))
    if source.get_backend_name() == "sqlite":
        path = source.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            raise TimelineError(f"the source SQLite file does not exist: {path or '(none)'}")


async def _revision(db: Database) -> str | None:
    async with db.session() as session:
        try:
            version: str | None = await session.scalar(
                text("SELECT version_num FROM alembic_version")
            )
            return version
        except SQLAlchemyError:
            return None


def _head(url: str) -> str | None:

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def _counts(session: AsyncSession) -> dict[str, int]:
    counts = {}
    for table in tables():
        counts[table.name] = int(await session.scalar(select(func.count()).select_from(table)) or 0)
    return counts


async def _copy_table(source: AsyncSession, target: AsyncSession, table: Table, batch: int) -> int:
    # Keyset paging on the primary key: constant memory, no OFFSET rescans.
    (pk,) = table.primary_key.columns
    copied = 0
    last = None
    while True:
        query = select(table).order_by(pk).limit(batch)
        if last is not None:
            query = query.where(pk > last)
        rows = [dict(row) for row in (await source.execute(query)).mappings().all()]
        if not rows:
            return copied
        await target.execute(insert(table), rows)
        copied += len(rows)
        last = rows[-1][pk.name]


async def _reset_sequences(session: AsyncSession) -> None:
    for table in tables():
        (pk,) = table.primary_key.columns
        sequence = await session.scalar(
            text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": table.name, "column": pk.name},
        )
        if sequence is None:
            continue
        # setval(seq, max + 1, false): the next nextval() returns max + 1 (1 on an empty table).
        await session.execute(
            text(
                f'SELECT setval(:seq, COALESCE((SELECT MAX("{pk.name}") FROM "{table.name}"), 0)'
                " + 1, false)"
            ),
            {"seq": sequence},
        )


async def copy_database(
    source_url: str,
    target_url: str,
    *,
    force: bool = False,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy every table from `source_url` to `target_url` (migrated to head first).

    Raises `Conflict` if the target holds rows and `force` is false, `TimelineError` when a
    database cannot be opened or the source is not at the code's schema revision.
    """
    _check_urls(source_url, target_url)
    started = time.perf_counter()
    report = CopyReport()
    source = Database(source_url)
    target = Database(target_url)
    try:
        head = _head(source_url)
        revision = await _revision(source)
        if revision is None:
            raise TimelineError("the source has no timeline schema (no alembic_version table)")
        if revision != head:
            raise TimelineError(
                f"the source is at schema revision {revision}, this version expects {head}: "
                "run `timeline-bot db upgrade` against the source first"
            )
        await upgrade_async(target_url)
        async with target.session() as tsession, source.session() as ssession:
            counts = await _counts(tsession)
            if any(counts.values()):
                if not force:
                    busy = ", ".join(f"{n} ({c} rows)" for n, c in counts.items() if c)
                    raise Conflict(
                        f"the target already holds data: {busy}; use --force to replace it"
                    )
                for table in reversed(tables()):
                    await tsession.execute(delete(table))
                report.emptied = True
            for table in tables():
                copied = await _copy_table(ssession, tsession, table, max(batch, 1))
                report.tables[table.name] = copied
                log.info("copied %d rows of %s", copied, table.name)
                if progress is not None:
                    progress(table.name, copied)
            if target.dialect == "postgresql":
                await _reset_sequences(tsession)
        async with target.session() as tsession:
            report.indexed = await sync_search_index(tsession)
    except (OSError, SQLAlchemyError) as exc:
        raise TimelineError(f"database copy failed: {type(exc).__name__}: {exc}") from exc
    finally:
        await source.dispose()
        await target.dispose()
    report.seconds = time.perf_counter() - started
    return report
