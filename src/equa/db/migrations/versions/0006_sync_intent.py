"""The sync keeps the admin's intent: links and flags belong to the linked group, exclusions, people added by hand.

Links and flags recorded before this revision are given the group their organization has linked now; those of an
organization with no group linked keep no group, and no later sync uses them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("microsoft_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.String(length=36), nullable=True))
    with op.batch_alter_table("microsoft_flagged_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.String(length=36), nullable=True))
    _backfill_group_ids()

    op.create_table(
        "microsoft_exclusions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("excluded_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_microsoft_exclusions_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_microsoft_exclusions_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["excluded_by"],
            ["users.id"],
            name="fk_microsoft_exclusions_excluded_by_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_microsoft_exclusions"),
        sa.UniqueConstraint(
            "organization_id", "user_id", name="uq_microsoft_exclusions_organization_id_user_id"
        ),
    )
    op.create_table(
        "microsoft_hand_added_members",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("directory_id", sa.String(length=36), nullable=False),
        sa.Column("added_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_microsoft_hand_added_members_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["added_by"],
            ["users.id"],
            name="fk_microsoft_hand_added_members_added_by_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_microsoft_hand_added_members"),
        sa.UniqueConstraint(
            "organization_id",
            "group_id",
            "directory_id",
            name="uq_microsoft_hand_added_members_org_group_directory",
        ),
    )


def _backfill_group_ids() -> None:
    """Give existing links and flags their organization's linked group (as lower-case GUID text)."""
    organizations = sa.table(
        "organizations", sa.column("id", sa.Uuid()), sa.column("microsoft_group", sa.Uuid())
    )
    connection = op.get_bind()
    linked = connection.execute(
        sa.select(organizations.c.id, organizations.c.microsoft_group).where(
            organizations.c.microsoft_group.is_not(None)
        )
    ).fetchall()
    for name in ("microsoft_members", "microsoft_flagged_members"):
        rows = sa.table(name, sa.column("organization_id", sa.Uuid()), sa.column("group_id", sa.String(36)))
        for organization_id, group_id in linked:
            connection.execute(
                rows.update().where(rows.c.organization_id == organization_id).values(group_id=str(group_id))
            )


def downgrade() -> None:
    op.drop_table("microsoft_hand_added_members")
    op.drop_table("microsoft_exclusions")
    with op.batch_alter_table("microsoft_flagged_members", schema=None) as batch_op:
        batch_op.drop_column("group_id")
    with op.batch_alter_table("microsoft_members", schema=None) as batch_op:
        batch_op.drop_column("group_id")
