"""Pushing team changes: with autoSync on, a change to the team queues a targeted run for just those people.

What counts as a team change is seen on the ORM session, whatever code made it (an invitation accepted, a member
removed, a user re-activated or deactivated, a changed address): a membership added or deleted, a user whose
`is_active` or address changed. The changes are handed over once their transaction has committed, coalesced per
organization for PUSH_WINDOW_SECONDS, then one targeted run (trigger `push`, push_run.py) is queued through the
task broker like any other run, so it runs in this process (embedded broker) or on a worker (EQUA_BROKER_URL).

One active run per organization still holds: while a run is queued or running, the pushed people wait here and go
in a follow-up once it has finished. They wait in this process's memory, and in the durable outbox written with
the change (fleet/outbox.py): if this process stops first, the next fleet cycle carries them. Memberships made with their organization, in one transaction, are
not pushed: a new organization's group is linked, and synced, afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from equa.accounts.models import User
from equa.db.engine import session_class_of
from equa.microsoft import repository
from equa.microsoft.fleet import repository as fleet_repository
from equa.microsoft.fleet.outbox import spread_user_changes
from equa.microsoft.sync.push_run import PUSH_TRIGGER
from equa.microsoft.sync.runs import PENDING_ENQUEUE_KEY, request_sync
from equa.organizations.models import Membership, Organization

log = logging.getLogger("equa.microsoft.sync.push")

PUSH_WINDOW_SECONDS = 1.0  # changes of one organization within this time go in one run
BUSY_POLL_SECONDS = 0.25  # how often people waiting for an active run look whether it has finished
_CHANGES_KEY = "equa_team_changes"
_NEW_ORGANIZATIONS_KEY = "equa_new_organizations"
_WATCHED_USER_COLUMNS = ("is_active", "email_normalized")

# (organization id, user id); organization None: a change of the user, for every organization they are in.
TeamChange = tuple[uuid.UUID | None, uuid.UUID]


class PushAnswer(StrEnum):
    QUEUED = "queued"  # a targeted run was queued (handed to the broker when the caller commits)
    BUSY = "busy"  # another run is queued or running: ask again once it has finished
    NOTHING = "nothing"  # autoSync off, no group linked, or nothing the group would change


async def request_push(
    session: AsyncSession, organization_id: uuid.UUID, user_ids: Iterable[uuid.UUID], *, lease_seconds: int
) -> PushAnswer:
    """Queue a targeted run for these people of the organization, if autoSync is on and one may start now."""
    organization = await repository.organization(session, organization_id)
    if organization is None or organization.microsoft_group is None or not organization.microsoft_auto_sync:
        return PushAnswer.NOTHING
    people = set(user_ids)
    if not organization.microsoft_remove_departed:
        # Without removeDeparted, someone leaving changes nothing in the group.
        people = {
            user_id for user_id, _, _ in await repository.active_team(session, organization.id, only=people)
        }
    if not people:
        return PushAnswer.NOTHING
    targets = sorted(str(user_id) for user_id in people)
    run = await request_sync(
        session, organization, None, False, PUSH_TRIGGER, lease_seconds=lease_seconds, targets=targets
    )
    # request_sync answers the active run when there is one; a run it made is marked for the broker.
    if run.id not in session.info.get(PENDING_ENQUEUE_KEY, []):
        return PushAnswer.BUSY
    # The durable copies of these changes (fleet/outbox.py) are carried now: the fleet cycle need not.
    await fleet_repository.delete_team_changes(session, organization.id, set(user_ids))
    return PushAnswer.QUEUED


# --- seeing team changes ------------------------------------------------------------------------------------


def _changed(user: User) -> bool:
    state = inspect(user)
    return any(state.attrs[name].history.has_changes() for name in _WATCHED_USER_COLUMNS)


def install_push_hook(
    session_factory: async_sessionmaker[AsyncSession], pusher: TeamChangePusher
) -> Callable[[], None]:
    """Watch the sessions of `session_factory` for team changes; hand them to `pusher` once committed.

    Returns the function that removes the hook."""
    session_class = session_class_of(session_factory)

    def collect(session: Session, flush_context: Any) -> None:
        # after_flush: new, dirty and deleted still list what this flush wrote, with its attribute history.
        changes: set[TeamChange] = session.info.setdefault(_CHANGES_KEY, set())
        created: set[uuid.UUID] = session.info.setdefault(_NEW_ORGANIZATIONS_KEY, set())
        created.update(obj.id for obj in session.new if isinstance(obj, Organization))
        for obj in (*session.new, *session.deleted):
            if isinstance(obj, Membership):
                changes.add((obj.organization_id, obj.user_id))
        for obj in session.dirty:
            if isinstance(obj, User) and _changed(obj):
                changes.add((None, obj.id))

    def hand_over(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint's release fires after_commit too: the changes are not committed yet
        changes: set[TeamChange] = session.info.pop(_CHANGES_KEY, set())
        created: set[uuid.UUID] = session.info.pop(_NEW_ORGANIZATIONS_KEY, set())
        changes = {change for change in changes if change[0] not in created}
        if changes:
            pusher.note(changes)

    def forget(session: Session, previous_transaction: Any) -> None:
        if previous_transaction.parent is None:  # the whole transaction, not a savepoint
            session.info.pop(_CHANGES_KEY, None)
            session.info.pop(_NEW_ORGANIZATIONS_KEY, None)

    event.listen(session_class, "after_flush", collect)
    event.listen(session_class, "after_commit", hand_over)
    event.listen(session_class, "after_soft_rollback", forget)

    def remove() -> None:
        event.remove(session_class, "after_flush", collect)
        event.remove(session_class, "after_commit", hand_over)
        event.remove(session_class, "after_soft_rollback", forget)

    return remove


# --- coalescing them ----------------------------------------------------------------------------------------


class TeamChangePusher:
    """Per organization: the people changed lately, and the one task that pushes them after the window."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        lease_seconds: int,
        window: float = PUSH_WINDOW_SECONDS,
        busy_poll: float = BUSY_POLL_SECONDS,
    ) -> None:
        self._session_factory = session_factory
        self._lease_seconds = lease_seconds
        self._window = window
        self._busy_poll = busy_poll
        self._pending: dict[uuid.UUID | None, set[uuid.UUID]] = {}
        self._tasks: dict[uuid.UUID | None, asyncio.Task[None]] = {}

    def note(self, changes: Iterable[TeamChange], *, delay: float | None = None) -> None:
        """Take committed changes in; called on the event loop's thread (the session's after-commit hook)."""
        for organization_id, user_id in changes:
            self._pending.setdefault(organization_id, set()).add(user_id)
        for organization_id in list(self._pending):
            if organization_id not in self._tasks:
                self._start(organization_id, self._window if delay is None else delay)

    def _start(self, key: uuid.UUID | None, delay: float) -> None:
        task = asyncio.get_running_loop().create_task(self._push_after(key, delay))
        self._tasks[key] = task

    async def _push_after(self, key: uuid.UUID | None, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            if key is None:
                await self._spread_user_changes()
            else:
                await self._push(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pushing team changes failed; the next scheduled sync brings the group in step")
            self._pending.pop(key, None)
        finally:
            self._tasks.pop(key, None)
        if self._pending.get(key):
            self._start(key, self._window)  # changes that came in while this push was being asked for

    async def _spread_user_changes(self) -> None:
        """Changes of users (re-activated, new address): pushed at once to each organization they are in."""
        users = self._pending.pop(None, set())
        async with self._session_factory() as session:
            by_organization = await repository.organizations_of_users(session, users)
            # Their durable copies become changes of each organization too, which the pushes below carry.
            await spread_user_changes(session, users)
            await session.commit()
        self.note(
            (
                (organization_id, user_id)
                for organization_id, people in by_organization.items()
                for user_id in people
            ),
            delay=0.0,
        )

    async def _push(self, organization_id: uuid.UUID) -> None:
        while True:
            people = set(self._pending.get(organization_id, ()))
            if not people:
                return
            async with self._session_factory() as session:
                answer = await request_push(
                    session, organization_id, people, lease_seconds=self._lease_seconds
                )
                await session.commit()
            if answer is not PushAnswer.BUSY:
                left = self._pending.get(organization_id, set()) - people
                if left:
                    self._pending[organization_id] = left
                else:
                    self._pending.pop(organization_id, None)
                return
            await asyncio.sleep(self._busy_poll)

    async def aclose(self) -> None:
        """Stop pushing (process shutdown): what is still waiting is left to the next scheduled sync."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pending.clear()
