"""The SQL of multi-tenant mode: tenant connections and consent round trips (services hold none)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from equa.db.base import utcnow
from equa.microsoft.tenants.models import ConnectionState, ConsentState, TenantConnection
from equa.organizations.models import Organization


async def connection_of(session: AsyncSession, organization_id: uuid.UUID) -> TenantConnection | None:
    return await session.get(TenantConnection, organization_id)


async def connections(session: AsyncSession) -> list[tuple[TenantConnection, str]]:
    """Every connection with its organization's name, by tenant then organization name."""
    rows = await session.execute(
        select(TenantConnection, Organization.name)
        .join(Organization, Organization.id == TenantConnection.organization_id)
        .order_by(TenantConnection.tenant_id, Organization.name)
    )
    return [(connection, name) for connection, name in rows.tuples()]


async def connected_tenants(session: AsyncSession) -> dict[str, list[uuid.UUID]]:
    """Tenant id -> the organizations it serves whose consent is not known to be revoked."""
    rows = await session.execute(
        select(TenantConnection.tenant_id, TenantConnection.organization_id).where(
            TenantConnection.state == ConnectionState.CONNECTED.value
        )
    )
    tenants: dict[str, list[uuid.UUID]] = {}
    for tenant_id, organization_id in rows.tuples():
        tenants.setdefault(tenant_id, []).append(organization_id)
    return tenants


async def organizations_of_tenant(session: AsyncSession, tenant_id: str) -> list[TenantConnection]:
    rows = await session.scalars(select(TenantConnection).where(TenantConnection.tenant_id == tenant_id))
    return list(rows)


async def revoked_organization_ids(session: AsyncSession) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(TenantConnection.organization_id).where(
            TenantConnection.state == ConnectionState.CONSENT_REVOKED.value
        )
    )
    return set(rows)


async def mark_tenant_revoked(session: AsyncSession, tenant_id: str, code: str | None) -> list[uuid.UUID]:
    """Every organization of the tenant not yet marked: consent revoked now. Returns their ids."""
    rows = await session.scalars(
        update(TenantConnection)
        .where(
            TenantConnection.tenant_id == tenant_id,
            TenantConnection.state == ConnectionState.CONNECTED.value,
        )
        .values(state=ConnectionState.CONSENT_REVOKED.value, revoked_at=utcnow(), revoked_code=code)
        .returning(TenantConnection.organization_id)
        .execution_options(synchronize_session=False)
    )
    return list(rows)


async def delete_connection(session: AsyncSession, connection: TenantConnection) -> None:
    await session.delete(connection)
    await session.flush()


# --- consent round trips ---------------------------------------------------------------------------------


def add_consent_state(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, expires_at: datetime
) -> ConsentState:
    state = ConsentState(organization_id=organization_id, user_id=user_id, expires_at=expires_at)
    session.add(state)
    return state


async def use_consent_state(session: AsyncSession, state_id: uuid.UUID, now: datetime) -> ConsentState | None:
    """Mark the round trip used, once: None when it does not exist or was used already (a replay)."""
    result = await session.execute(
        update(ConsentState)
        .where(ConsentState.id == state_id, ConsentState.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    return await session.get(ConsentState, state_id, populate_existing=True)
