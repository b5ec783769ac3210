"""Delivery through channel webhooks: `watches.delivery`, `webhook_name`, `webhook_avatar`,
`alerts.webhook_id`, `alerts.post_started_at` (forum posts), and the `channel_webhooks` the bot created (id and secret token).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable): no batch copy of `watches`, whose alerts cascade.
    op.add_column("watches", sa.Column("delivery", sa.String(16), nullable=True))
    op.add_column("watches", sa.Column("webhook_name", sa.String(80), nullable=True))
    op.add_column("watches", sa.Column("webhook_avatar", sa.Text(), nullable=True))
    op.add_column("alerts", sa.Column("webhook_id", sa.BigInteger(), nullable=True))
    op.add_column("alerts", sa.Column("post_started_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "channel_webhooks",
        sa.Column("channel_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("webhook_id", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("channel_webhooks")
    # In place, as 0003 does (a batch copy of `watches` would cascade-delete its alerts).
    op.drop_column("alerts", "post_started_at")
    op.drop_column("alerts", "webhook_id")
    op.drop_column("watches", "webhook_avatar")
    op.drop_column("watches", "webhook_name")
    op.drop_column("watches", "delivery")
