"""Microsoft integration: identity links, flagged members, sync runs and outcomes, audit, group creations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "microsoft_audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("target", sa.String(length=320), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("graph_request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"],
            ["users.id"],
            name=op.f("fk_microsoft_audit_events_actor_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_microsoft_audit_events_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_microsoft_audit_events")),
    )
    with op.batch_alter_table("microsoft_audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_microsoft_audit_events_org_created", ["organization_id", "created_at"], unique=False
        )

    op.create_table(
        "microsoft_flagged_members",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("directory_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("user_principal_name", sa.String(length=320), nullable=True),
        sa.Column("user_type", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name=op.f("fk_microsoft_flagged_members_decided_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_microsoft_flagged_members_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_microsoft_flagged_members")),
        sa.UniqueConstraint(
            "organization_id",
            "directory_id",
            name=op.f("uq_microsoft_flagged_members_organization_id_directory_id"),
        ),
    )
    with op.batch_alter_table("microsoft_flagged_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_microsoft_flagged_members_org_status", ["organization_id", "status"], unique=False
        )

    op.create_table(
        "microsoft_group_creations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("mail_nickname", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_microsoft_group_creations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_microsoft_group_creations")),
        sa.UniqueConstraint(
            "organization_id",
            "idempotency_key",
            name=op.f("uq_microsoft_group_creations_organization_id_idempotency_key"),
        ),
    )
    op.create_table(
        "microsoft_members",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("directory_id", sa.String(length=36), nullable=False),
        sa.Column("matched_by", sa.String(length=32), nullable=False),
        sa.Column("matched_email", sa.String(length=320), nullable=False),
        sa.Column("added_by_sync", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_microsoft_members_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_microsoft_members_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_microsoft_members")),
        sa.UniqueConstraint(
            "organization_id", "user_id", name=op.f("uq_microsoft_members_organization_id_user_id")
        ),
    )
    with op.batch_alter_table("microsoft_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_microsoft_members_org_directory", ["organization_id", "directory_id"], unique=False
        )

    op.create_table(
        "microsoft_sync_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("group_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("graph_stats", sa.JSON(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_action", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_microsoft_sync_runs_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.id"],
            name=op.f("fk_microsoft_sync_runs_requested_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_microsoft_sync_runs")),
    )
    with op.batch_alter_table("microsoft_sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_microsoft_sync_runs_org_created", ["organization_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "uq_microsoft_sync_runs_one_active",
            ["organization_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('queued', 'running')"),
            postgresql_where=sa.text("status IN ('queued', 'running')"),
        )

    op.create_table(
        "microsoft_sync_outcomes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("directory_id", sa.String(length=36), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["microsoft_sync_runs.id"],
            name=op.f("fk_microsoft_sync_outcomes_run_id_microsoft_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_microsoft_sync_outcomes_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_microsoft_sync_outcomes")),
    )
    with op.batch_alter_table("microsoft_sync_outcomes", schema=None) as batch_op:
        batch_op.create_index("ix_microsoft_sync_outcomes_run_outcome", ["run_id", "outcome"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("microsoft_sync_outcomes", schema=None) as batch_op:
        batch_op.drop_index("ix_microsoft_sync_outcomes_run_outcome")

    op.drop_table("microsoft_sync_outcomes")
    with op.batch_alter_table("microsoft_sync_runs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_microsoft_sync_runs_one_active",
            sqlite_where=sa.text("status IN ('queued', 'running')"),
            postgresql_where=sa.text("status IN ('queued', 'running')"),
        )
        batch_op.drop_index("ix_microsoft_sync_runs_org_created")

    op.drop_table("microsoft_sync_runs")
    with op.batch_alter_table("microsoft_members", schema=None) as batch_op:
        batch_op.drop_index("ix_microsoft_members_org_directory")

    op.drop_table("microsoft_members")
    op.drop_table("microsoft_group_creations")
    with op.batch_alter_table("microsoft_flagged_members", schema=None) as batch_op:
        batch_op.drop_index("ix_microsoft_flagged_members_org_status")

    op.drop_table("microsoft_flagged_members")
    with op.batch_alter_table("microsoft_audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_microsoft_audit_events_org_created")

    op.drop_table("microsoft_audit_events")
