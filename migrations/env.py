"""Alembic environment: async engine, batch mode for SQLite, models' metadata as target."""

from __future__ import annotations

import asyncio
import logging
import os

from alembic import context
from sqlalchemy.engine import Connection

from timeline.app.config import load_settings
from timeline.storage.engine import make_engine, normalise_url
from timeline.storage.migrate import include_object
from timeline.storage.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    # The `alembic` command with alembic.ini: its logging sections.
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata
log = logging.getLogger("alembic.env")

DATABASE_URL_ENV = "TIMELINE_BOT_DATABASE_URL"


def database_url() -> str:
    """The URL to migrate: set by `timeline.storage.migrate` when run from code; from the `alembic`
    command, $TIMELINE_BOT_DATABASE_URL or the config file's [database] url."""
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    if os.environ.get(DATABASE_URL_ENV):
        return normalise_url(os.environ[DATABASE_URL_ENV])

    path = os.environ.get("TIMELINE_BOT_CONFIG") or "config.toml"
    return normalise_url(load_settings(path).database.url)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    engine = make_engine(database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def run_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_async())
