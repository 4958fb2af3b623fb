"""Groups an organization may reach in the `granted` scope: granted by an operator, or created here.

Groups that create-group made before this revision are recorded as created for their organization (their
creation records name them), so they stay linkable after the upgrade. Other linked groups are not granted
automatically: an operator grants them (`equa microsoft grant-group`), or runs with MS_GROUP_SCOPE=tenant.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    grants = op.create_table(
        "microsoft_group_grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("group_name", sa.String(length=256), nullable=True),
        sa.Column("granted_by", sa.Uuid(), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("creation_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_microsoft_group_grants_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["granted_by"],
            ["users.id"],
            name="fk_microsoft_group_grants_granted_by_users",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["creation_id"],
            ["microsoft_group_creations.id"],
            name="fk_microsoft_group_grants_creation_id_microsoft_group_creations",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_microsoft_group_grants"),
        sa.UniqueConstraint("group_id", name="uq_microsoft_group_grants_group_id"),
    )
    op.create_index(
        "ix_microsoft_group_grants_organization_id", "microsoft_group_grants", ["organization_id"]
    )

    connection = op.get_bind()
    creations = connection.execute(
        sa.text(
            "SELECT id, organization_id, group_id, created_at FROM microsoft_group_creations "
            "WHERE group_id IS NOT NULL ORDER BY created_at"
        )
    ).fetchall()
    seen: set[str] = set()
    rows = []
    for creation_id, organization_id, group_id, created_at in creations:
        key = str(group_id).lower()
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id
                if isinstance(organization_id, uuid.UUID)
                else uuid.UUID(str(organization_id)),
                "group_id": key,
                "origin": "created",
                "group_name": None,
                "granted_by": None,
                "granted_at": _as_utc(created_at),
                "creation_id": creation_id
                if isinstance(creation_id, uuid.UUID)
                else uuid.UUID(str(creation_id)),
            }
        )
    if rows:
        op.bulk_insert(grants, rows)


def _as_utc(value: object) -> datetime:
    # SQLite hands raw timestamps back as text; PostgreSQL as aware datetimes.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return datetime.now(UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def downgrade() -> None:
    op.drop_index("ix_microsoft_group_grants_organization_id", table_name="microsoft_group_grants")
    op.drop_table("microsoft_group_grants")
