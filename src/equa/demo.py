"""`equa demo`: the whole product on one machine with no account or setting, against the offline emulator.

This is the one place equa imports graph_emulator (ARCHITECTURE rule 8): it starts the emulator in-process with
its default seeded tenant (40 users including guests, groups of every kind including a dynamic and a
role-assignable one), migrates an SQLite database in the demo data directory, creates an organization whose team
partly matches the tenant plus an admin login, points the MS_* settings at the emulator and serves the app.

The demo runs in the default group scope, `granted`, with one seeded group ("Engineering") granted to the demo
organization as an operator would (`equa microsoft grant-group`): a new user sees both ways a group becomes the
organization's, granted and created here, and that the rest of the tenant is out of reach.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from equa.settings import Settings, load_settings

DEMO_ORGANIZATION = "Contoso (demo)"
# Team members who are not in the tenant: a sync flags nobody for them, it reports them as not in the tenant.
OUTSIDE_ADDRESSES = ("pat.outside@equa-demo.example", "sam.contractor@equa-demo.example")
TENANT_TEAM_SIZE = 8
GRANTED_GROUP = "Engineering"


DEMO_TOKEN_NAME = "demo"


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    organization_id: str
    api_token: str


def demo_settings(data_dir: Path, emulator: Any) -> Settings:
    """Settings pointing at the running emulator and a SQLite database in `data_dir`; nothing read from files."""
    return load_settings(
        data_dir=data_dir,
        # The same file `equa --data-dir DIR` uses, so every command works against the demo's database.
        database_url=f"sqlite+aiosqlite:///{(data_dir / 'equa.db').resolve()}",
        ms_auth_enabled=True,
        ms_auth_client_id=emulator.client_id,
        ms_auth_tenant_id=emulator.tenant_id,
        ms_auth_secret=emulator.client_secret,
        ms_authority_host=emulator.base_url,
        ms_graph_url=emulator.graph_url,
        ms_ca_bundle=Path(emulator.ca_path),
        ms_admin_consent_redirect_uri=None,
        ms_group_scope="granted",
    )


async def seed_demo_organization(
    settings: Settings, tenant_users: list[dict[str, Any]], granted_group_id: str | None = None
) -> DemoLogin:
    """The demo organization and its admin (created once, password renewed on every start), and the group an
    operator granted it (through the grants service, as `equa microsoft grant-group` does)."""
    from sqlalchemy import select, update

    from equa.accounts.models import ApiToken
    from equa.accounts.service import create_user, get_user_by_email, set_password
    from equa.accounts.tokens import create_api_token
    from equa.db.base import utcnow
    from equa.db.engine import create_engine_for, create_session_factory
    from equa.organizations.models import Organization, Role
    from equa.organizations.service import add_member, create_organization

    members = [u for u in tenant_users if u.get("userType") == "Member" and u.get("mail")]
    guests = [u for u in tenant_users if u.get("userType") == "Guest" and u.get("mail")]
    admin_address = members[0]["mail"]
    password = secrets.token_urlsafe(12)
    engine = create_engine_for(settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            admin = await get_user_by_email(session, admin_address)
            if admin is None:
                admin = await create_user(session, admin_address, members[0].get("displayName"), password)
            else:
                await set_password(session, admin, password)
            organization = await session.scalar(
                select(Organization).where(Organization.name == DEMO_ORGANIZATION)
            )
            if organization is None:
                organization = await create_organization(session, DEMO_ORGANIZATION, admin)
                team = [u["mail"] for u in members[1:TENANT_TEAM_SIZE]] + [g["mail"] for g in guests[:1]]
                for address in [*team, *OUTSIDE_ADDRESSES]:
                    await add_member(session, organization, address, Role.MEMBER)
            if granted_group_id is not None:
                await _grant_demo_group(settings, session, organization.id, granted_group_id)
            # A fresh API token on every start, like the password; the previous start's stops working.
            await session.execute(
                update(ApiToken)
                .where(
                    ApiToken.user_id == admin.id,
                    ApiToken.name == DEMO_TOKEN_NAME,
                    ApiToken.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
            _, token = await create_api_token(session, admin, DEMO_TOKEN_NAME)
            await session.commit()
            return DemoLogin(admin.email, password, str(organization.id), token)
    finally:
        await engine.dispose()


async def _grant_demo_group(settings: Settings, session: Any, organization_id: Any, group_id: str) -> None:
    from equa.microsoft.grants import grant_group
    from equa.microsoft.graph import build_graph_client

    async with build_graph_client(settings) as graph:
        await grant_group(session, graph, organization_id, group_id, None)  # already granted: nothing changes


def granted_group_id(seed: dict[str, Any]) -> str:
    return str(next(g["id"] for g in seed["tenants"][0]["groups"] if g["displayName"] == GRANTED_GROUP))


def run_demo(host: str, port: int, data_dir: Path) -> None:
    """Start the emulator, prepare the database and organization, print the login, serve until interrupted."""
    import uvicorn

    from equa.app import create_app
    from equa.db.migrate import upgrade_database
    from equa.logging_setup import configure_logging
    from graph_emulator.seeds import default_seed
    from graph_emulator.testing import start_emulator

    data_dir.mkdir(parents=True, exist_ok=True)
    seed = default_seed()
    emulator = start_emulator(data_dir / "emulator", seed=seed)
    try:
        settings = demo_settings(data_dir, emulator)
        upgrade_database(settings.resolved_database_url)
        login = asyncio.run(
            seed_demo_organization(settings, seed["tenants"][0]["users"], granted_group_id(seed))
        )
        configure_logging(settings)
        base = f"http://{host}:{port}"
        print(
            "\n".join(
                [
                    "",
                    "Equa demo: Microsoft 365 is the offline emulator "
                    f"({emulator.base_url}, tenant {emulator.tenant_domain}).",
                    f"Open      {base}/",
                    f"Email     {login.email}",
                    f"Password  {login.password}",
                    f"API       {base}/api/v1/organizations/{login.organization_id}/microsoft/status",
                    f"Groups    {GRANTED_GROUP} is granted to the demo organization (MS_GROUP_SCOPE=granted); "
                    "create another from the settings page.",
                    f"Token     {login.api_token}",
                    f"          curl -H 'Authorization: Bearer {login.api_token}' "
                    f"{base}/api/v1/organizations/{login.organization_id}/microsoft/status",
                    f"CLI       equa --data-dir {data_dir} tokens list {login.email}",
                    "Stop with Ctrl+C.",
                    "",
                ]
            ),
            flush=True,
        )
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None)
    finally:
        emulator.stop()
