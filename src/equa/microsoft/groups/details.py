"""The linked group as Graph has it now, with its member count (the status card's group)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.microsoft.graph import GraphClient
from equa.microsoft.groups.linking import (
    linkability,
    linked_group,
    recently_linked,
    require_linked_in_scope,
    tolerating_replication_lag,
)
from equa.microsoft.groups.problems import LinkRefusal
from equa.microsoft.scope import GroupScope
from equa.organizations.models import Organization


@dataclass(frozen=True)
class GroupDetails:
    group: dict[str, Any]
    member_count: int | None
    refusal: LinkRefusal | None


async def member_count(graph: GraphClient, group_id: str) -> int:
    # Graph's count lags behind member changes; ours made in the last minutes are counted already.
    return graph.own_writes.member_count(
        graph.tenant, group_id, await graph.count(f"groups/{group_id}/members")
    )


async def group_details(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User | None,
    *,
    scope: GroupScope,
) -> GroupDetails:
    """The linked group as Graph has it now. GroupMissing when it was deleted outside Equa (link cleared)."""
    group_id = await require_linked_in_scope(session, graph, organization, scope)
    # The group and its member count are two Graph round trips; ask for both at once.
    counting = asyncio.create_task(
        tolerating_replication_lag(
            lambda: member_count(graph, group_id), recent=recently_linked(organization)
        )
    )
    try:
        group = await linked_group(session, graph, organization, actor, "reading the group", scope=None)
    except BaseException:
        counting.cancel()
        await asyncio.gather(counting, return_exceptions=True)
        raise
    count = await counting
    return GroupDetails(group, count, linkability(group))
