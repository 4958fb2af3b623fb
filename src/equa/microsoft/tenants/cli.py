"""`equa microsoft connections` and the organization lookup of `equa microsoft check --org ORG_ID`."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from equa.settings import Settings


def organization_tenant(settings: Settings, organization_id: uuid.UUID) -> str | None:
    """The tenant `check --org` signs in to: the organization's connected tenant in multi-tenant mode (None: the
    one tenant of single-tenant mode). Exits with one line when the organization or its tenant is missing."""
    import asyncio

    from equa.cli_support import fail, migrated_or_exit
    from equa.db.engine import create_engine_for, create_session_factory
    from equa.microsoft import repository as microsoft_repository
    from equa.microsoft.tenants import repository
    from equa.microsoft.tenants.problems import CONNECT_ACTION
    from equa.microsoft.tenants.routing import TenantView

    migrated_or_exit(settings)

    async def lookup() -> tuple[bool, TenantView]:
        engine = create_engine_for(settings.resolved_database_url)
        try:
            async with create_session_factory(engine)() as session:
                found = await microsoft_repository.organization(session, organization_id) is not None
                return found, TenantView.of(await repository.connection_of(session, organization_id))
        finally:
            await engine.dispose()

    found, view = asyncio.run(lookup())
    if not found:
        raise fail(f"No organization has the id {organization_id}.")
    if not settings.multi_tenant:
        return None
    if view.tenant_id is None:
        raise fail(
            f"Organization {organization_id} has not connected a Microsoft 365 tenant. {CONNECT_ACTION}"
        )
    if view.connection.value == "consent_revoked":
        typer.echo(
            f"Organization {organization_id}: the tenant's consent was recorded as revoked; checking it now."
        )
    return view.tenant_id


def connections_command() -> None:
    """List every organization's connected Microsoft 365 tenant (multi-tenant mode)."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from equa.cli_support import migrated_or_exit, settings_or_exit
    from equa.db.engine import create_engine_for, create_session_factory
    from equa.microsoft.tenants import repository

    settings = settings_or_exit()
    migrated_or_exit(settings)

    async def rows() -> list[tuple[str, ...]]:
        engine = create_engine_for(settings.resolved_database_url)
        try:
            async with create_session_factory(engine)() as session:
                found = await repository.connections(session)
        finally:
            await engine.dispose()
        return [
            (
                str(connection.organization_id),
                name,
                connection.tenant_id,
                connection.tenant_name or "",
                connection.tenant_domain or "",
                connection.state,
                connection.connected_at.strftime("%Y-%m-%d %H:%M UTC"),
            )
            for connection, name in found
        ]

    listed = asyncio.run(rows())
    if not settings.multi_tenant:
        typer.echo(
            "Single-tenant mode (MS_AUTH_TENANT_ID names the one tenant): organizations connect no tenant."
        )
    if not listed:
        typer.echo("No organization has connected a Microsoft 365 tenant.")
        return
    table = Table("Organization", "Name", "Tenant", "Tenant name", "Domain", "Connection", "Connected")
    for row in listed:
        table.add_row(*row)
    Console(width=200).print(table)


def register_tenant_commands(app: typer.Typer) -> None:
    app.command("connections")(connections_command)
