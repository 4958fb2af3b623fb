"""Migration 0006: links and flags recorded before it belong to the group their organization has linked."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from equa.db.migrate import downgrade_database, upgrade_database


def test_existing_links_and_flags_get_the_linked_group_and_unlinked_ones_none(tmp_path: Path) -> None:
    path = tmp_path / "equa.db"
    upgrade_database(f"sqlite+aiosqlite:///{path}", "0005")
    group = uuid.uuid4()
    linked, unlinked, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, email, email_normalized, display_name, is_active, is_platform_admin, "
                "created_at, updated_at) VALUES (:id, 'a@x.example', 'a@x.example', 'A', 1, 0, '2026-01-01', "
                "'2026-01-01')"
            ),
            {"id": user.hex},
        )
        for org, group_id in ((linked, group.hex), (unlinked, None)):
            connection.execute(
                text(
                    "INSERT INTO organizations (id, name, microsoft_group, microsoft_auto_sync, "
                    "microsoft_remove_departed, created_at) VALUES (:id, :name, :group, 0, 0, '2026-01-01')"
                ),
                {"id": org.hex, "name": f"Org {org.hex[:4]}", "group": group_id},
            )
            connection.execute(
                text(
                    "INSERT INTO microsoft_members (id, organization_id, user_id, directory_id, matched_by, "
                    "matched_email, added_by_sync, created_at, updated_at) VALUES "
                    "(:id, :org, :user, 'd1', 'mail', 'a@x.example', 1, '2026-01-01', '2026-01-01')"
                ),
                {"id": uuid.uuid4().hex, "org": org.hex, "user": user.hex},
            )
            connection.execute(
                text(
                    "INSERT INTO microsoft_flagged_members (id, organization_id, directory_id, status, "
                    "first_seen_at, last_seen_at, created_at, updated_at) VALUES "
                    "(:id, :org, 'd2', 'dismissed', '2026-01-01', '2026-01-01', '2026-01-01', '2026-01-01')"
                ),
                {"id": uuid.uuid4().hex, "org": org.hex},
            )
    upgrade_database(f"sqlite+aiosqlite:///{path}")
    with engine.connect() as connection:
        for table in ("microsoft_members", "microsoft_flagged_members"):
            rows = dict(connection.execute(text(f"SELECT organization_id, group_id FROM {table}")).all())
            assert rows == {linked.hex: str(group), unlinked.hex: None}, table
    downgrade_database(f"sqlite+aiosqlite:///{path}", "0005")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM microsoft_members")).scalar() == 2
    engine.dispose()
