"""Storylines: events about one developing subject, and what each joining source adds.

A `storylines` table; `events.storyline_id` (SET NULL when a storyline is deleted) and
`events.storyline_detached` (an admin took the event out; ingest leaves it alone); and
`entries.brief`, the clause a source added to its event's earlier sources. Existing events
start without a storyline: storylines form as new events arrive.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "storylines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("title_edited", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storylines")),
    )
    op.create_index(
        "ix_storylines_guild_updated", "storylines", ["guild_id", "updated_at"], unique=False
    )
    # Batch mode: SQLite cannot add a foreign key with ALTER TABLE. `events` has no triggers
    # (the full-text triggers are on `entries`, which gets a plain ADD COLUMN below).
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("storyline_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("storyline_detached", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_foreign_key(
            "fk_events_storyline_id_storylines",
            "storylines",
            ["storyline_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_events_storyline_id", ["storyline_id"], unique=False)
    op.add_column("entries", sa.Column("brief", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("entries", "brief")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_storyline_id")
        batch_op.drop_constraint("fk_events_storyline_id_storylines", type_="foreignkey")
        batch_op.drop_column("storyline_detached")
        batch_op.drop_column("storyline_id")
    op.drop_index("ix_storylines_guild_updated", table_name="storylines")
    op.drop_table("storylines")
