"""Multi-tenant mode: each organization's connected tenant, admin consent round trips, and the tenant of grants.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "microsoft_tenant_connections",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_name", sa.String(length=256), nullable=True),
        sa.Column("tenant_domain", sa.String(length=256), nullable=True),
        sa.Column("connected_by", sa.Uuid(), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_code", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_microsoft_tenant_connections_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connected_by"],
            ["users.id"],
            name="fk_microsoft_tenant_connections_connected_by_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("organization_id", name="pk_microsoft_tenant_connections"),
    )
    op.create_index(
        "ix_microsoft_tenant_connections_tenant_id", "microsoft_tenant_connections", ["tenant_id"]
    )
    op.create_table(
        "microsoft_consent_states",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_microsoft_consent_states_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_microsoft_consent_states_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_microsoft_consent_states"),
    )
    with op.batch_alter_table("microsoft_group_grants") as batch:
        batch.add_column(sa.Column("tenant_id", sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("microsoft_group_grants") as batch:
        batch.drop_column("tenant_id")
    op.drop_table("microsoft_consent_states")
    op.drop_index("ix_microsoft_tenant_connections_tenant_id", table_name="microsoft_tenant_connections")
    op.drop_table("microsoft_tenant_connections")
