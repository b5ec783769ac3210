"""The storyline subject stored with the entry that created an event: `entries.subject`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default): no batch copy of `entries` (a million rows).
    # Existing rows stay NULL: the storyline cache computes their subject from the text, as
    # before, and stores it when it loads them.
    op.add_column("entries", sa.Column("subject", sa.Text(), nullable=True))


def downgrade() -> None:
    # In place, as 0003 does (SQLite 3.35+ drops a column without a batch copy).
    op.drop_column("entries", "subject")
