"""An index on `entries.first_seen_at`: the event index reloads by it after a restart.

A restarted poller rebuilds its in-memory event index from the entries published *or first
seen* within the clustering window (the rule the live index keeps), and every round reads
the entries other pollers stored since its watermark; both filter on `first_seen_at`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_entries_first_seen", "entries", ["first_seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_entries_first_seen", table_name="entries")
