"""The durable outbox of team changes: each change the push hook sees is also written, in the transaction that
made it, as a pending change. The API process still pushes it at once (sync/push.py, for latency) and deletes what
its run carries; what a crash or a busy organization leaves behind is carried by the next fleet cycle."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.db.engine import session_class_of
from equa.microsoft import repository
from equa.microsoft.fleet import repository as fleet_repository
from equa.microsoft.fleet.models import ChangeKind, PendingChange
from equa.microsoft.fleet.repository import write_pending_changes
from equa.organizations.models import Membership, Organization

_WATCHED_USER_COLUMNS = ("is_active", "email_normalized")
_NEW_ORGANIZATIONS_KEY = "equa_outbox_new_organizations"


def _user_changed(user: User) -> bool:
    state = inspect(user)
    return any(state.attrs[name].history.has_changes() for name in _WATCHED_USER_COLUMNS)


def team_changes_of(session: Session) -> list[dict[str, Any]]:
    """The pending changes this flush makes (after it, so every id is known): memberships added or deleted (not
    those made with their new organization, whose group is linked and synced afterwards), users re-activated,
    deactivated or re-addressed (organization None: spread to their organizations by the cycle)."""
    # Organizations created in this transaction, over all its flushes.
    created: set[Any] = session.info.setdefault(_NEW_ORGANIZATIONS_KEY, set())
    created.update(obj.id for obj in session.new if isinstance(obj, Organization))
    seen: set[tuple[Any, Any]] = set()
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, Membership) and obj.organization_id not in created:
            seen.add((obj.organization_id, obj.user_id))
    for obj in session.dirty:
        if isinstance(obj, User) and _user_changed(obj):
            seen.add((None, obj.id))
    now = utcnow()
    return [
        {
            "organization_id": organization_id,
            "kind": ChangeKind.TEAM.value,
            "user_id": user_id,
            "created_at": now,
        }
        for organization_id, user_id in sorted(seen, key=str)
    ]


def install_outbox_hook(session_factory: async_sessionmaker[AsyncSession]) -> Callable[[], None]:
    """Write team changes as pending changes in the sessions of `session_factory`; returns the remover."""
    session_class = session_class_of(session_factory)

    def write_pending(session: Session, flush_context: Any) -> None:
        rows = team_changes_of(session)
        if rows:
            # In the flush's own transaction: the change and its pending row commit or roll back together.
            write_pending_changes(session.connection(), rows)

    def end_transaction(session: Session, *args: Any) -> None:
        if not session.in_nested_transaction():  # a savepoint's release fires after_commit too
            session.info.pop(_NEW_ORGANIZATIONS_KEY, None)

    event.listen(session_class, "after_flush", write_pending)
    event.listen(session_class, "after_commit", end_transaction)
    event.listen(session_class, "after_rollback", end_transaction)

    def remove() -> None:
        event.remove(session_class, "after_flush", write_pending)
        event.remove(session_class, "after_commit", end_transaction)
        event.remove(session_class, "after_rollback", end_transaction)

    return remove


async def spread_user_changes(session: AsyncSession, only: Collection[uuid.UUID] | None = None) -> None:
    """A user's change (re-activated, deactivated, new address) becomes a team change of each of their teams (of
    the changes of `only` these users, if given); the caller commits."""
    changes = [c for c in await fleet_repository.user_changes(session) if only is None or c.user_id in only]
    if not changes:
        return
    users = {c.user_id for c in changes if c.user_id is not None}
    for organization_id, people in (await repository.organizations_of_users(session, users)).items():
        for user_id in sorted(people, key=str):
            session.add(
                PendingChange(organization_id=organization_id, kind=ChangeKind.TEAM.value, user_id=user_id)
            )
    await fleet_repository.delete_changes(session, [c.id for c in changes])
