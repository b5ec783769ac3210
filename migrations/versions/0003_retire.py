"""Retired feeds and watches: `retired_at` on `feeds` and `watches`.

A feed or watch that leaves the config file is retired instead of deleted: it is no longer
polled (feeds) or matched (watches), and its entries, events, notes and alerts stay. NULL means
active; re-adding it to the config file sets the column back to NULL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable `retired_at` columns (a plain ADD COLUMN on both backends)."""
    op.add_column("feeds", sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("watches", sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the columns; retired rows become active rows again.

    A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch table copy: recreating
    `feeds` with foreign keys on would drop it first, and its ON DELETE CASCADE would take the
    entries with it.
    """
    op.drop_column("watches", "retired_at")
    op.drop_column("feeds", "retired_at")
