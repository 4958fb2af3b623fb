"""Targeted sync runs (pushed team changes) and the indexes that retention deletes by.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("microsoft_sync_runs") as batch:
        batch.add_column(sa.Column("targets", sa.JSON(none_as_null=True), nullable=True))
    op.create_index("ix_microsoft_audit_events_created", "microsoft_audit_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_microsoft_audit_events_created", table_name="microsoft_audit_events")
    with op.batch_alter_table("microsoft_sync_runs") as batch:
        batch.drop_column("targets")
