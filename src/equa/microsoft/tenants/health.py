"""The scheduled check of connected tenants: a tenant that refuses the app has revoked its consent.

Each connected tenant is asked for its directory object with its own token; a refusal of the app itself (no
service principal any more, permissions removed) marks every organization of that tenant `consent_revoked`, which
pauses their scheduled syncs until an admin reconnects. Other failures (throttling, outages) change nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.microsoft.graph import GraphClient, GraphError
from equa.microsoft.graph.errors import refuses_the_app
from equa.microsoft.tenants import repository

log = logging.getLogger("equa.microsoft.tenants")


async def check_tenants(
    session_factory: async_sessionmaker[AsyncSession], graph: GraphClient
) -> dict[str, str]:
    """Ask every connected tenant; returns tenant id -> the refusal code of those found revoked."""
    async with session_factory() as session:
        tenants = await repository.connected_tenants(session)
    revoked: dict[str, str] = {}
    for tenant_id in sorted(tenants):
        code = graph.refusals.get(tenant_id)
        if code is None:
            try:
                await graph.for_tenant(tenant_id).get("organization", params={"$select": "id"})
                continue
            except GraphError as error:
                if not refuses_the_app(error):
                    log.info("tenant %s not checked now: %s", tenant_id, error.code)
                    continue
                code = error.code or "refused"
        revoked[tenant_id] = code
    if revoked:
        async with session_factory() as session:
            for tenant_id, code in revoked.items():
                marked = await repository.mark_tenant_revoked(session, tenant_id, code)
                log.warning(
                    "tenant %s refuses the app (%s): consent revoked, scheduled syncs of %d organization(s) paused",
                    tenant_id,
                    code,
                    len(marked),
                )
            await session.commit()
    return revoked


async def tenant_of_organizations(session_factory: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    """Organization id (text) -> its connected tenant, for the linked groups' check."""
    async with session_factory() as session:
        tenants = await repository.connected_tenants(session)
    return {str(org): tenant for tenant, orgs in tenants.items() for org in orgs}
