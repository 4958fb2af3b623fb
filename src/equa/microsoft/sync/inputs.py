"""What a sync run starts from, read in one short session: the team, the known links, dismissals, the policy."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from equa.microsoft import repository
from equa.microsoft.models import SyncRun
from equa.microsoft.sync.plan import IdentityLink, SyncPolicy, TeamMember


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
    # Team members an admin removed from the group (never added back), people an admin added by hand (never flagged).
    excluded: set[uuid.UUID] = field(default_factory=set)
    chosen: set[str] = field(default_factory=set)


async def load_inputs(session: AsyncSession, run: SyncRun) -> SyncInputs | None:
    """The run's inputs; None when the organization is gone or no longer has a group linked."""
    organization = await repository.organization(session, run.organization_id)
    if organization is None or organization.microsoft_group is None:
        return None
    team = [
        TeamMember(user_id, email, name)
        for user_id, email, name in await repository.active_team(session, organization.id)
    ]
    group_id = str(organization.microsoft_group)
    # Links made for another group (one linked before) do not count: a new link starts fresh.
    link_rows = await repository.directory_links(session, organization.id, group_id)
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
    dismissed = await repository.dismissed_directory_ids(session, organization.id, group_id)
    return SyncInputs(
        organization_id=organization.id,
        group_id=group_id,
        actor_id=run.requested_by,
        dry_run=run.dry_run,
        team=team,
        links=links,
        dismissed=dismissed,
        policy=SyncPolicy(remove_departed=organization.microsoft_remove_departed),
        excluded=await repository.excluded_user_ids(session, organization.id),
        chosen=await repository.hand_added_ids(session, organization.id, group_id),
    )
