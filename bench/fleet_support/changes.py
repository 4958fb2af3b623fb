"""Changes on both sides between two cycles, and what each should lead to.

Microsoft side, "by hand" in the emulator's directory (as an admin would in Entra; the bench changes it between
cycles, while no request is in flight): a team member removed from the group (the sync records an exclusion) and a
stranger added (the sync flags them). Equa side, through the service's own code path (organizations.service, ORM
sessions with the API process's team-change recording installed): a person joins the team (the sync adds them) and
a member the sync added leaves it (removeDeparted is on: the sync removes them).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from fleet_support.model import FleetModel, FleetOrg

ATTEMPTS_PER_CHANGE = 4


@dataclass
class Expectations:
    """What the next cycles must bring about, per organization (directory ids)."""

    excluded: dict[uuid.UUID, set[str]] = field(default_factory=dict)  # removed by hand: stay out
    departed: dict[uuid.UUID, set[str]] = field(default_factory=dict)  # left the team: removed from the group
    microsoft_changes: int = 0
    equa_changes: int = 0

    @property
    def changes(self) -> int:
        return self.microsoft_changes + self.equa_changes


def _pick(rng: random.Random, orgs: list[FleetOrg], count: int) -> list[FleetOrg]:
    """Organizations picked at random, enough for `count` changes when some picks find nothing to change."""
    return [orgs[rng.randrange(len(orgs))] for _ in range(ATTEMPTS_PER_CHANGE * count)]


def change_microsoft_side(
    emulator: Any,
    model: FleetModel,
    count: int,
    expect: Expectations,
    touched: set[tuple[uuid.UUID, str]],
    rng: random.Random,
) -> None:
    """`count` membership changes by hand, half removals of team members, half additions of strangers."""
    made = 0
    for org in _pick(rng, model.orgs, count):
        if made == count:
            break
        tenant = emulator.directory.tenants[org.tenant_id]
        members = tenant.members[org.group_id]
        team = {model.directory_of_user[u] for u in org.team}
        if made % 2 == 0:
            candidates = [d for d in members.ordered() if d in team and (org.id, d) not in touched]
            if not candidates:
                continue
            chosen = rng.choice(candidates)
            tenant.remove_member(org.group_id, chosen)
            expect.excluded.setdefault(org.id, set()).add(chosen)
        else:
            users = model.users_of_tenant[org.tenant_id]
            chosen = users[rng.randrange(len(users))]
            if chosen in members or chosen in team or (org.id, chosen) in touched:
                continue
            tenant.add_member(org.group_id, chosen)
        touched.add((org.id, chosen))
        made += 1
    expect.microsoft_changes += made


async def change_equa_side(
    session_factory: Any,
    model: FleetModel,
    count: int,
    expect: Expectations,
    touched: set[tuple[uuid.UUID, str]],
    added_by_sync: dict[uuid.UUID, set[str]],
    rng: random.Random,
) -> None:
    """`count` team changes through organizations.service: half joins, half leaves of people the sync added."""
    from equa.organizations import service
    from equa.organizations.models import Organization, Role

    by_org: dict[uuid.UUID, list[tuple[str, str]]] = {}
    orgs = {org.id: org for org in model.orgs}
    made = 0
    for org in _pick(rng, model.orgs, count):
        if made == count:
            break
        if made % 2 == 0:
            users = model.users_of_tenant[org.tenant_id]
            chosen = users[rng.randrange(len(users))]
            if model.user_of_directory[chosen] in org.team or (org.id, chosen) in touched:
                continue
            by_org.setdefault(org.id, []).append(("join", chosen))
        else:
            candidates = sorted(d for d in added_by_sync.get(org.id, ()) if (org.id, d) not in touched)
            if not candidates:
                continue
            chosen = rng.choice(candidates)
            by_org.setdefault(org.id, []).append(("leave", chosen))
        touched.add((org.id, chosen))
        made += 1
    for org_id, changes in by_org.items():
        async with session_factory() as session:
            organization = await session.get(Organization, org_id)
            for kind, directory_id in changes:
                user_id = model.user_of_directory[directory_id]
                if kind == "join":
                    await service.add_member(session, organization, model.email_of_user[user_id], Role.MEMBER)
                    orgs[org_id].team.add(user_id)
                else:
                    await service.remove_member(session, organization, user_id)
                    orgs[org_id].team.discard(user_id)
                    expect.departed.setdefault(org_id, set()).add(directory_id)
            await session.commit()
        expect.equa_changes += len(changes)
