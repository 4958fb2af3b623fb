"""Fleet engine: each tenant's delta rounds and the changes waiting for a targeted run (the durable outbox).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "microsoft_delta_rounds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("group_ids", sa.JSON(), nullable=False),
        sa.Column("delta_link", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_microsoft_delta_rounds"),
    )
    op.create_index("ix_microsoft_delta_rounds_tenant_id", "microsoft_delta_rounds", ["tenant_id"])
    op.create_table(
        "microsoft_pending_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("directory_id", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_microsoft_pending_changes_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_microsoft_pending_changes"),
    )
    op.create_index(
        "ix_microsoft_pending_changes_organization_id", "microsoft_pending_changes", ["organization_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_microsoft_pending_changes_organization_id", table_name="microsoft_pending_changes")
    op.drop_table("microsoft_pending_changes")
    op.drop_index("ix_microsoft_delta_rounds_tenant_id", table_name="microsoft_delta_rounds")
    op.drop_table("microsoft_delta_rounds")
