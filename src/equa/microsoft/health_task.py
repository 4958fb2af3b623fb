"""The periodic health check: find linked groups that no longer exist in Microsoft 365 and clear the links."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.microsoft import repository
from equa.microsoft.graph import GraphClient, GraphError, GraphNotFound
from equa.microsoft.groups import clear_stale_link, fetch_group, recently_linked

log = logging.getLogger("equa.microsoft.health")


async def check_linked_groups(
    session_factory: async_sessionmaker[AsyncSession],
    graph: GraphClient,
    tenants: Mapping[str, str] | None = None,
) -> list[uuid.UUID]:
    """Read every linked group once; clear (with an audit event) the links of groups Graph says are gone.

    Returns the ids of the organizations whose link was cleared. A group linked within the replication window
    is skipped (Graph may not show a new group yet), and any other Graph failure (throttling, permissions)
    stops the check without clearing anything: only a 404 is evidence of a deletion. One transaction, committed
    at the end.

    `tenants` (multi-tenant mode): organization id -> its connected tenant; each group is read in its own tenant,
    organizations without one are skipped, and one tenant's failure does not stop the others' checks.
    """
    cleared: list[uuid.UUID] = []
    async with session_factory() as session:
        organizations = await repository.linked_organizations(session)
        for organization in organizations:
            if recently_linked(organization):
                continue
            client = graph
            if tenants is not None:
                tenant = tenants.get(str(organization.id))
                if tenant is None:
                    continue
                client = graph.for_tenant(tenant)
            try:
                await fetch_group(client, str(organization.microsoft_group))
            except GraphNotFound as error:
                await clear_stale_link(
                    session,
                    organization,
                    actor_id=None,
                    request_id=error.request_id,
                    found_by="scheduled health check",
                )
                cleared.append(organization.id)
            except GraphError as error:
                if tenants is not None:
                    continue
                log.warning("health check stopped: %s", error)
                break
        await session.commit()
    return cleared
