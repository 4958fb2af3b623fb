"""Microsoft-side changes folded into an organization's state, as a full sync would conclude, for just those people.

- A linked team member removed from the group by hand is excluded (issue 14's intent: the sync does not add them
  back until an admin allows them again); someone added by hand and removed again is forgotten; a flag clears.
- A directory user added by hand who is a team member (by link or by address) is linked, and loses an exclusion;
  anyone else is flagged for an invitation, unless an admin dismissed them or added them by hand from Equa.
Directory users the fold does not know are read in one $batch of GET users/{id} (20 per envelope).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import normalize_email
from equa.db.base import utcnow
from equa.microsoft import repository
from equa.microsoft.audit import record_audit
from equa.microsoft.fleet import repository as fleet_repository
from equa.microsoft.graph import BatchRequest, GraphClient
from equa.microsoft.models import (
    FlaggedMember,
    FlagStatus,
    MatchedBy,
    MicrosoftExclusion,
    MicrosoftMember,
    Outcome,
)
from equa.microsoft.sync.recorder import DISPLAY_NAME_MAX, OutcomeRow

USER_FIELDS = "id,mail,userPrincipalName,displayName,userType"
REMOVED_BY_HAND = "Removed from the group in Microsoft 365: the sync does not add them back until an admin allows them again."


@dataclass
class FoldResult:
    rows: list[OutcomeRow] = field(default_factory=list)
    newly_flagged: int = 0


async def read_directory_users(
    graph: GraphClient, directory_ids: Collection[str]
) -> dict[str, dict[str, Any]]:
    """Directory id -> the user's addresses and name; users no longer in the directory are left out."""
    ids = sorted(directory_ids)
    if not ids:
        return {}
    requests = [BatchRequest("GET", f"/users/{d}?$select={USER_FIELDS}") for d in ids]
    found: dict[str, dict[str, Any]] = {}
    for directory_id, result in zip(ids, await graph.batch(requests), strict=True):
        if result.ok and isinstance(result.body, dict):
            found[directory_id] = result.body
    return found


async def fold_microsoft_changes(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    organization_id: uuid.UUID,
    group_id: str,
    added: set[str],
    removed: set[str],
) -> FoldResult:
    """Fold these additions and removals (directory ids, lower case) into the organization; one transaction."""
    result = FoldResult()
    async with session_factory() as session:
        team = {
            user_id: (email, name)
            for user_id, email, name in await repository.active_team(session, organization_id)
        }
        linked = {
            directory_id.lower(): user_id
            for directory_id, user_id in (
                await repository.directory_user_ids(session, organization_id, group_id)
            ).items()
        }
        excluded = await repository.excluded_user_ids(session, organization_id)
        for directory_id in sorted(removed):
            await repository.forget_hand_added(session, organization_id, group_id, directory_id)
            await fleet_repository.clear_pending_flag(session, organization_id, directory_id)
            user_id = linked.get(directory_id)
            if user_id is None or user_id not in team or user_id in excluded:
                continue  # someone the sync removed (they left the team), or not a team member
            email, name = team[user_id]
            session.add(
                MicrosoftExclusion(organization_id=organization_id, user_id=user_id, excluded_by=None)
            )
            excluded.add(user_id)
            record_audit(
                session,
                organization_id=organization_id,
                actor_id=None,
                action="member.exclude",
                target=email,
                detail=REMOVED_BY_HAND,
            )
            result.rows.append(
                OutcomeRow(
                    outcome=Outcome.EXCLUDED.value,
                    user_id=user_id,
                    directory_id=directory_id,
                    email=email,
                    display_name=name,
                    message=REMOVED_BY_HAND,
                )
            )
        await _fold_additions(
            session, graph, organization_id, group_id, added, team, linked, excluded, result
        )
        await session.commit()
    return result


async def _fold_additions(
    session: AsyncSession,
    graph: GraphClient,
    organization_id: uuid.UUID,
    group_id: str,
    added: set[str],
    team: dict[uuid.UUID, tuple[str, str | None]],
    linked: dict[str, uuid.UUID],
    excluded: set[uuid.UUID],
    result: FoldResult,
) -> None:
    known = {d for d in added if linked.get(d) in team}
    for directory_id in sorted(known):
        await _present(session, organization_id, linked[directory_id], directory_id, team, excluded, result)
    strangers = added - known
    if not strangers:
        return
    by_address = {email: user_id for user_id, (email, _) in team.items()}
    hand_added = {d.lower() for d in await repository.hand_added_ids(session, organization_id, group_id)}
    for directory_id, user in (await read_directory_users(graph, strangers)).items():
        addresses = [
            (normalize_email(value), matched_by)
            for value, matched_by in (
                (user.get("mail"), MatchedBy.MAIL.value),
                (user.get("userPrincipalName"), MatchedBy.USER_PRINCIPAL_NAME.value),
            )
            if isinstance(value, str) and value
        ]
        member = next(((by_address[a], how) for a, how in addresses if a in by_address), None)
        if member is not None:
            user_id, matched_by = member
            await _link(
                session, organization_id, group_id, user_id, directory_id, team[user_id][0], matched_by
            )
            await _present(session, organization_id, user_id, directory_id, team, excluded, result)
            continue
        if directory_id in hand_added:
            continue  # an admin chose them from Equa: not flagged
        flag = await fleet_repository.flag_of(session, organization_id, directory_id)
        name = user.get("displayName")
        if flag is None:
            result.newly_flagged += 1
            session.add(
                FlaggedMember(
                    organization_id=organization_id,
                    group_id=group_id,
                    directory_id=directory_id,
                    display_name=(name or None) and str(name)[:DISPLAY_NAME_MAX],
                    email=user.get("mail"),
                    user_principal_name=user.get("userPrincipalName"),
                    user_type=user.get("userType"),
                    status=FlagStatus.PENDING.value,
                    first_seen_at=utcnow(),
                    last_seen_at=utcnow(),
                )
            )
        else:
            flag.last_seen_at = utcnow()
        if flag is None or flag.status != FlagStatus.DISMISSED.value:
            result.rows.append(
                OutcomeRow(
                    outcome=Outcome.FLAGGED.value,
                    directory_id=directory_id,
                    email=user.get("mail") or user.get("userPrincipalName"),
                    display_name=name,
                )
            )


async def _present(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    directory_id: str,
    team: dict[uuid.UUID, tuple[str, str | None]],
    excluded: set[uuid.UUID],
    result: FoldResult,
) -> None:
    """A team member is in the group: an exclusion ends (they were added back by hand), a flag clears."""
    email, name = team[user_id]
    await fleet_repository.clear_pending_flag(session, organization_id, directory_id)
    if user_id in excluded:
        found = await repository.exclusion(session, organization_id, user_id)
        if found is not None:
            await session.delete(found)
        excluded.discard(user_id)
        record_audit(
            session,
            organization_id=organization_id,
            actor_id=None,
            action="member.allow",
            target=email,
            detail="Added back to the group in Microsoft 365: no longer excluded.",
        )
    result.rows.append(
        OutcomeRow(
            outcome=Outcome.ALREADY_MEMBER.value,
            user_id=user_id,
            directory_id=directory_id,
            email=email,
            display_name=name,
        )
    )


async def _link(
    session: AsyncSession,
    organization_id: uuid.UUID,
    group_id: str,
    user_id: uuid.UUID,
    directory_id: str,
    email: str,
    matched_by: str,
) -> None:
    """Link a team member to the directory user found in the group, as a full sync does (not added by the sync)."""
    link = await repository.directory_link(session, organization_id, user_id)
    if link is None:
        session.add(
            MicrosoftMember(
                organization_id=organization_id,
                group_id=group_id,
                user_id=user_id,
                directory_id=directory_id,
                matched_by=matched_by,
                matched_email=email,
                added_by_sync=False,
            )
        )
        return
    if link.matched_by == MatchedBy.EXPLICIT.value and link.group_id == group_id:
        return  # an admin said which account is theirs: that holds
    same = link.group_id == group_id and link.directory_id.lower() == directory_id
    link.added_by_sync = link.added_by_sync and same
    link.group_id = group_id
    link.directory_id = directory_id
    link.matched_by = matched_by
    link.matched_email = email


async def differences(
    session: AsyncSession, organization_id: uuid.UUID, group_id: str, added: set[str], removed: set[str]
) -> tuple[set[str], set[str]]:
    """The additions and removals Equa does not already account for: echoes of the sync's own writes (a linked
    team member added, someone who left the team removed) and people already flagged or chosen are no difference."""
    if not (added or removed):
        return set(), set()
    team = {user_id for user_id, _, _ in await repository.active_team(session, organization_id)}
    linked = {
        directory_id.lower(): user_id
        for directory_id, user_id in (
            await repository.directory_user_ids(session, organization_id, group_id)
        ).items()
    }
    excluded = await repository.excluded_user_ids(session, organization_id)
    hand_added = {d.lower() for d in await repository.hand_added_ids(session, organization_id, group_id)}
    flagged = {d.lower() for d in await fleet_repository.flagged_ids(session, organization_id)}
    new_added = {
        d
        for d in added
        if not (linked.get(d) in team and linked[d] not in excluded)
        and d not in hand_added
        and d not in flagged
    }
    new_removed = {
        d
        for d in removed
        if (linked.get(d) in team and linked[d] not in excluded) or d in hand_added or d in flagged
    }
    return new_added, new_removed
