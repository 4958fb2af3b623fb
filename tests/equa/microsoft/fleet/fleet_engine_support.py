"""Helpers of the fleet engine tests: a tenant of several groups on the emulator, teams linked to them, cycles."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User, normalize_email
from equa.microsoft.fleet.cycle import FleetCycleReport, run_fleet_cycle
from equa.microsoft.models import RunStatus, SyncRun
from equa.microsoft.sync.runs import wait_for_run
from equa.microsoft.tasks import JobResources
from equa.organizations.models import Membership, Organization, Role

DELTA = "GET /v1.0/groups/delta"


def person(index: int, domain: str) -> dict[str, Any]:
    nickname = f"fleet{index}"
    mail = f"{nickname}@{domain}"
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fleet-engine/{domain}/{index}")),
        "displayName": f"Fleet person {index}",
        "mail": mail,
        "mailNickname": nickname,
        "userPrincipalName": mail,
        "userType": "Member",
        "accountEnabled": True,
    }


def group(key: str, domain: str, members: Sequence[str]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fleet-engine/{domain}/group/{key}")),
        "displayName": f"Team {key}",
        "groupTypes": ["Unified"],
        "mailEnabled": True,
        "securityEnabled": False,
        "mailNickname": f"team-{key}",
        "visibility": "Private",
        "members": list(members),
        "owners": [],
    }


@dataclass
class FleetTenant:
    users: list[dict[str, Any]]
    groups: list[str]  # group i holds users 2i and 2i+1 (the team of organization i)


def load_groups(emu: Any, count: int) -> FleetTenant:
    """The emulator's tenant with `count` groups and 2 users per group (plus 10 spare users), none in any group."""
    from graph_emulator import seeds

    users = [person(i, emu.tenant_domain) for i in range(2 * count + 10)]
    groups = [group(str(i), emu.tenant_domain, []) for i in range(count)]
    emu.reset(
        {
            "tenants": [
                {
                    "id": emu.tenant_id,
                    "domain": emu.tenant_domain,
                    "displayName": "Contoso",
                    "size": seeds.size_for(len(users)),
                    "apps": seeds.default_apps(),
                    "users": users,
                    "groups": groups,
                }
            ]
        }
    )
    emu.set_lag(0)
    return FleetTenant(users, [g["id"] for g in groups])


async def link_teams(
    session_factory: async_sessionmaker[AsyncSession], tenant: FleetTenant, *, remove_departed: bool = False
) -> list[uuid.UUID]:
    """Organization i (autoSync on) links group i; its team is users 2i and 2i+1 (no admin in the tenant)."""
    organizations: list[uuid.UUID] = []
    async with session_factory() as session:
        for index, group_id in enumerate(tenant.groups):
            people = [tenant.users[2 * index], tenant.users[2 * index + 1]]
            users = [
                User(
                    email=p["mail"],
                    email_normalized=normalize_email(p["mail"]),
                    display_name=p["displayName"],
                )
                for p in people
            ]
            session.add_all(users)
            organization = Organization(
                name=f"Fleet org {index}",
                microsoft_group=uuid.UUID(group_id),
                microsoft_auto_sync=True,
                microsoft_remove_departed=remove_departed,
            )
            session.add(organization)
            await session.flush()
            session.add_all(
                [Membership(organization_id=organization.id, user_id=u.id, role=Role.MEMBER) for u in users]
            )
            organizations.append(organization.id)
        await session.commit()
    return organizations


async def cycle_and_wait(jobs: JobResources, *, timeout: float = 30, **kwargs: Any) -> FleetCycleReport:
    """One fleet cycle, then every run it queued to its end (the embedded broker runs them in this process); a
    cycle of many full reconciles needs a longer `timeout` on a loaded machine."""
    report = await run_fleet_cycle(jobs, **kwargs)
    finished = await asyncio.gather(*(wait_for_run(jobs.session_factory, r, timeout) for r in report.run_ids))
    for run in finished:
        assert run is not None and run.status == RunStatus.SUCCEEDED.value, run and run.error_message
    return report


async def runs_of(
    session_factory: async_sessionmaker[AsyncSession], run_ids: Sequence[uuid.UUID]
) -> list[SyncRun]:
    async with session_factory() as session:
        return list(await session.scalars(select(SyncRun).where(SyncRun.id.in_(list(run_ids)))))


def delta_requests(emu: Any) -> int:
    return int(emu.stats()["requests"].get(DELTA, 0))
