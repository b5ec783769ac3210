"""Per-watch message templates and colours: `watches.template`, `watches.colour`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable): no batch copy of `watches`, whose alerts cascade.
    op.add_column("watches", sa.Column("template", sa.Text(), nullable=True))
    op.add_column("watches", sa.Column("colour", sa.Integer(), nullable=True))


def downgrade() -> None:
    # In place, as 0003 does (a batch copy of `watches` would cascade-delete its alerts).
    op.drop_column("watches", "colour")
    op.drop_column("watches", "template")
