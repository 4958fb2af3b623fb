"""Sync runs queued again after an outage: how many times, and when the next try is due.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("microsoft_sync_runs") as batch:
        batch.add_column(sa.Column("requeues", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("microsoft_sync_runs") as batch:
        batch.drop_column("retry_at")
        batch.drop_column("requeues")
