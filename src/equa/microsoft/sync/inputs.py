"""What a sync run starts from, read in one short session: the team, the known links, dismissals, the policy."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.microsoft.models import FlaggedMember, FlagStatus, MicrosoftMember, SyncRun
from equa.microsoft.sync.plan import IdentityLink, SyncPolicy, TeamMember
from equa.organizations.models import Membership, Organization


@dataclass
class SyncInputs:
    organization_id: uuid.UUID
    group_id: str
    actor_id: uuid.UUID | None
    dry_run: bool
    team: list[TeamMember]
    links: list[IdentityLink]
    dismissed: set[str]
    policy: SyncPolicy


async def load_inputs(session: AsyncSession, run: SyncRun) -> SyncInputs | None:
    """The run's inputs; None when the organization is gone or no longer has a group linked."""
    organization = await session.get(Organization, run.organization_id)
    if organization is None or organization.microsoft_group is None:
        return None
    rows = await session.execute(
        select(User.id, User.email_normalized, User.display_name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization.id, User.is_active.is_(True))
    )
    team = [TeamMember(user_id, email, name) for user_id, email, name in rows]
    link_rows = await session.scalars(
        select(MicrosoftMember).where(MicrosoftMember.organization_id == organization.id)
    )
    links = [
        IdentityLink(
            user_id=m.user_id,
            directory_id=m.directory_id,
            matched_email=m.matched_email,
            matched_by=m.matched_by,
            added_by_sync=m.added_by_sync,
        )
        for m in link_rows
    ]
    dismissed = set(
        await session.scalars(
            select(FlaggedMember.directory_id).where(
                FlaggedMember.organization_id == organization.id,
                FlaggedMember.status == FlagStatus.DISMISSED.value,
            )
        )
    )
    return SyncInputs(
        organization_id=organization.id,
        group_id=str(organization.microsoft_group),
        actor_id=run.requested_by,
        dry_run=run.dry_run,
        team=team,
        links=links,
        dismissed=dismissed,
        policy=SyncPolicy(remove_departed=organization.microsoft_remove_departed),
    )
