"""`equa demo --multi-tenant`: multi-tenant mode on one machine, against the offline emulator's several tenants.

The emulator runs the multi-tenant demo seed: the app registered in its publisher's tenant, Contoso (consented)
and Fabrikam (not consented). Two organizations share one admin login: "Contoso (demo)", already connected to
Contoso (proven with a token and GET /organization, as the consent callback does), and "Fabrikam (demo)", not
connected: its settings page starts the real admin consent round trip, with the Fabrikam administrator's sign-in
printed at start.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from equa.demo import DemoLogin, _equa_command, seed_demo_organization
from equa.settings import MULTI_TENANT_AUTHORITY, Settings, load_settings

FABRIKAM_ORGANIZATION = "Fabrikam (demo)"


def multi_tenant_demo_settings(data_dir: Path, emulator: Any, public_url: str) -> Settings:
    return load_settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{(data_dir / 'equa.db').resolve()}",
        ms_auth_enabled=True,
        ms_auth_client_id=emulator.client_id,
        ms_auth_tenant_id=MULTI_TENANT_AUTHORITY,
        ms_auth_secret=emulator.client_secret,
        ms_authority_host=emulator.base_url,
        ms_graph_url=emulator.graph_url,
        ms_ca_bundle=Path(emulator.ca_path),
        public_url=public_url,
    )


async def seed_multi_tenant_demo(
    settings: Settings, contoso_users: list[dict[str, Any]], contoso_tenant: str
) -> tuple[DemoLogin, str]:
    """The two organizations (one admin) and Contoso's connection; answers the login and Fabrikam's org id."""
    from sqlalchemy import select

    from equa.accounts.service import get_user_by_email
    from equa.db.engine import create_engine_for, create_session_factory
    from equa.microsoft.graph import build_graph_client
    from equa.microsoft.tenants import repository
    from equa.microsoft.tenants.connection import prove_tenant
    from equa.microsoft.tenants.models import TenantConnection
    from equa.organizations.models import Organization
    from equa.organizations.service import create_organization

    login = await seed_demo_organization(settings, contoso_users)
    async with build_graph_client(settings) as graph:
        name, domain = await prove_tenant(graph, contoso_tenant)
    engine = create_engine_for(settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            admin = await get_user_by_email(session, login.email)
            assert admin is not None
            fabrikam = await session.scalar(
                select(Organization).where(Organization.name == FABRIKAM_ORGANIZATION)
            )
            if fabrikam is None:
                fabrikam = await create_organization(session, FABRIKAM_ORGANIZATION, admin)
            contoso_id = uuid.UUID(login.organization_id)
            if await repository.connection_of(session, contoso_id) is None:
                session.add(
                    TenantConnection(
                        organization_id=contoso_id,
                        tenant_id=contoso_tenant,
                        tenant_name=name,
                        tenant_domain=domain,
                        connected_by=admin.id,
                    )
                )
            await session.commit()
            return login, str(fabrikam.id)
    finally:
        await engine.dispose()


def run_multi_tenant_demo(host: str, port: int, data_dir: Path) -> None:
    """Start the emulator with several tenants, seed both organizations, print the logins, serve."""
    import uvicorn

    from equa.app import create_app
    from equa.db.migrate import upgrade_database
    from equa.logging_setup import configure_logging
    from graph_emulator import seeds
    from graph_emulator.testing import start_emulator

    data_dir.mkdir(parents=True, exist_ok=True)
    base = f"http://{host}:{port}"
    seed = seeds.multi_tenant_seed([f"{base}/microsoft/consent-callback"])
    emulator = start_emulator(data_dir / "emulator-multi-tenant", seed=seed)
    try:
        settings = multi_tenant_demo_settings(data_dir / "multi-tenant", emulator, base)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_database(settings.resolved_database_url)
        contoso = next(t for t in seed["tenants"] if t["id"] == seeds.DEFAULT_TENANT_ID)
        login, fabrikam_org = asyncio.run(
            seed_multi_tenant_demo(settings, contoso["users"], seeds.DEFAULT_TENANT_ID)
        )
        configure_logging(settings)
        fabrikam_admin, fabrikam_password = seeds.DEMO_ADMINS[seeds.FABRIKAM_TENANT_ID]
        print(
            "\n".join(
                [
                    "",
                    "Equa demo, multi-tenant mode (MS_AUTH_TENANT_ID=organizations): Microsoft 365 is the offline "
                    f"emulator ({emulator.base_url}) with the tenants Contoso and Fabrikam.",
                    f"Open      {base}/",
                    f"Email     {login.email}",
                    f"Password  {login.password}",
                    "",
                    f"Contoso (demo)   connected to Contoso: {base}/organizations/{login.organization_id}/settings",
                    f"Fabrikam (demo)  not connected yet:    {base}/organizations/{fabrikam_org}/settings",
                    "  To connect it: Connect Microsoft 365, then sign in at the Microsoft page as Fabrikam's "
                    "administrator and Accept:",
                    f"  Tenant admin  {fabrikam_admin}",
                    f"  Password      {fabrikam_password}",
                    "",
                    f"Token     {login.api_token}",
                    f"CLI       {_equa_command()} --data-dir {settings.data_dir} microsoft connections",
                    "Stop with Ctrl+C.",
                    "",
                ]
            ),
            flush=True,
        )
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None)
    finally:
        emulator.stop()
