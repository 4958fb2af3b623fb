"""Fleet engine: a delta round taken by compaction waits, not resumed, until it takes over from the rounds it merges.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("microsoft_delta_rounds") as batch:
        batch.add_column(sa.Column("takes_over_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("microsoft_delta_rounds") as batch:
        batch.drop_column("takes_over_at")
