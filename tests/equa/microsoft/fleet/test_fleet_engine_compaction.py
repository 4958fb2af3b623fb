"""Compaction of delta rounds: after unlinks an idle cycle costs ceil(groups / 50) requests again, and no change
made in Microsoft 365 around the merge is lost."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from fleet_engine_support import cycle_and_wait, delta_requests, link_teams, load_groups, runs_of
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.db.base import utcnow
from equa.microsoft.fleet.compaction import SETTLE
from equa.microsoft.fleet.models import DeltaRound
from equa.organizations.models import Organization

pytestmark = pytest.mark.retry_budget("sync")


async def unlink(session_factory: async_sessionmaker[AsyncSession], group_ids: Sequence[str]) -> None:
    async with session_factory() as session:
        await session.execute(
            update(Organization)
            .where(Organization.microsoft_group.in_([uuid.UUID(g) for g in group_ids]))
            .values(microsoft_group=None)
        )
        await session.commit()


async def round_sizes(session_factory: async_sessionmaker[AsyncSession]) -> list[int]:
    async with session_factory() as session:
        return sorted(len(r.group_ids) for r in await session.scalars(select(DeltaRound)))


def after_settling() -> Any:
    return utcnow() + SETTLE + timedelta(seconds=1)


async def test_after_unlinks_the_rounds_are_merged_and_an_idle_cycle_costs_one_request_per_50_groups(
    app: Any, emu: Any, session_factory: Any
) -> None:
    tenant = load_groups(emu, 100)
    await link_teams(session_factory, tenant)
    jobs = app.state.jobs
    await cycle_and_wait(jobs, timeout=180)  # each group's first full reconcile
    assert await round_sizes(session_factory) == [50, 50]
    # Rounds hold their groups in id order: keep 20 of each round, unlink the other 60.
    by_id = sorted(tenant.groups)
    kept = by_id[:20] + by_id[50:70]
    # One unlink saves no round (99 groups still need 2): nothing is merged, no extra request.
    await unlink(session_factory, by_id[20:21])
    emu.reset_stats()
    one_unlink = await cycle_and_wait(jobs)
    assert delta_requests(emu) == 2 and one_unlink.run_ids == []
    await unlink(session_factory, [g for g in by_id[21:] if g not in kept])
    bound = math.ceil(len(kept) / 50)

    # The rounds are read as usual, and one round of the 40 groups is taken from now on.
    emu.reset_stats()
    taking = await cycle_and_wait(jobs)
    assert delta_requests(emu) == 2 + bound and taking.run_ids == [] and taking.merged_rounds == 0
    # While the new round settles, the old ones still serve (it is not read: no extra request).
    emu.reset_stats()
    waiting = await cycle_and_wait(jobs)
    assert delta_requests(emu) == 2 and waiting.merged_rounds == 0
    # Then the old rounds are read a last time and replaced.
    emu.reset_stats()
    merging = await cycle_and_wait(jobs, now=after_settling())
    assert delta_requests(emu) == 2 and merging.merged_rounds == 2 and merging.run_ids == []
    assert await round_sizes(session_factory) == [40]

    for _ in range(2):
        emu.reset_stats()
        idle = await cycle_and_wait(jobs, now=after_settling())
        assert delta_requests(emu) == bound == emu.stats()["graph_requests"]
        assert idle.run_ids == [] and idle.merged_rounds == 0


async def test_changes_around_the_merge_are_folded_and_the_merged_round_sees_later_ones(
    app: Any, emu: Any, session_factory: Any
) -> None:
    tenant = load_groups(emu, 60)
    organizations = await link_teams(session_factory, tenant)
    organization_of = dict(zip(tenant.groups, organizations, strict=True))
    jobs = app.state.jobs
    await cycle_and_wait(jobs)
    by_id = sorted(tenant.groups)
    await unlink(session_factory, by_id[30:50])  # rounds of 30 and 10 groups: they fit in one
    first, second, third = by_id[0], by_id[55], by_id[10]
    strangers = [u["id"] for u in tenant.users[-3:]]

    # Just before the new round is taken, an admin adds someone to a group; Graph is still processing the change
    # when the rounds are read, so they do not see it yet.
    emu.set_lag(600)
    await jobs.graph.post(
        f"groups/{first}/members/$ref",
        json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{strangers[0]}"},
    )
    taking = await cycle_and_wait(jobs)
    assert taking.run_ids == []
    emu.replicate_now()
    emu.set_lag(0)
    # Between the new round's start and the merge, someone is added to another group.
    emu.add_members(second, [strangers[1]])

    merging = await cycle_and_wait(jobs, now=after_settling())
    runs = await runs_of(session_factory, merging.run_ids)
    assert {r.organization_id: r.trigger for r in runs} == {
        organization_of[first]: "delta",
        organization_of[second]: "delta",
    }
    assert all(r.counts["flagged"] == 1 for r in runs)
    assert merging.merged_rounds == 2

    # After the merge, the merged round sees changes to any of its groups.
    emu.add_members(third, [strangers[2]])
    emu.reset_stats()
    after = await cycle_and_wait(jobs, now=after_settling())
    assert delta_requests(emu) == 1
    runs = await runs_of(session_factory, after.run_ids)
    assert [(r.organization_id, r.trigger, r.counts["flagged"]) for r in runs] == [
        (organization_of[third], "delta", 1)
    ]
