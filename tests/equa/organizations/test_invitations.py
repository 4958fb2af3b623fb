"""Team invitations: no account enumeration, no squatting, single-use links that expire, and the operator commands."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.organizations.models import Invitation, Membership, Organization

MakeUser = Callable[..., Awaitable[User]]
MakeOrg = Callable[..., Awaitable[Organization]]
Bearer = Callable[[User], Awaitable[dict[str, str]]]
PASSWORD = "a long enough passphrase"


async def invite(
    client: httpx.AsyncClient, org: Organization, headers: dict[str, str], email: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/organizations/{org.id}/members", json={"email": email, **extra}, headers=headers
    )


def token_of(answer: httpx.Response) -> str:
    return str(answer.json()["invitationUrl"]).rsplit("/invitations/", 1)[1]


async def test_adding_a_member_answers_alike_for_an_existing_account_and_an_unknown_address(
    client: httpx.AsyncClient, make_user: MakeUser, make_org: MakeOrg, bearer: Bearer, session_factory: Any
) -> None:
    admin = await make_user()
    await make_user("carla@example.com", password="pw-1234567890", display_name="Carla Secret Name")
    org = await make_org(admin)
    headers = await bearer(admin)

    known = await invite(client, org, headers, "Carla@Example.com", displayName="Squatter")
    unknown = await invite(client, org, headers, "nobody@example.com", displayName="Squatter")

    assert known.status_code == unknown.status_code == 201
    assert (
        set(known.json())
        == set(unknown.json())
        == {"id", "email", "role", "createdAt", "expiresAt", "invitationUrl"}
    )
    assert "Carla Secret Name" not in known.text and "invited" not in known.json()
    assert known.json()["invitationUrl"].startswith("http://testserver/invitations/inv_")
    # Neither became a member or a user: they are pending invitations.
    async with session_factory() as session:
        users = await session.scalar(select(func.count()).select_from(User))
        memberships = await session.scalar(
            select(func.count()).select_from(Membership).where(Membership.organization_id == org.id)
        )
    assert users == 2 and memberships == 1
    pending = (await client.get(f"/api/v1/organizations/{org.id}/invitations", headers=headers)).json()
    assert sorted(p["email"] for p in pending) == ["Carla@example.com", "nobody@example.com"]
    assert all("invitationUrl" not in p for p in pending)


async def test_a_newcomer_sets_their_own_name_and_password_through_the_link_once(
    client: httpx.AsyncClient, make_user: MakeUser, make_org: MakeOrg, bearer: Bearer
) -> None:
    admin = await make_user()
    org = await make_org(admin, name="Northwind")
    answer = await invite(
        client, org, await bearer(admin), "New.Person@Example.com", displayName="Chosen by admin"
    )
    token = token_of(answer)

    details = await client.get(f"/api/v1/invitations/{token}")
    assert details.json()["organizationName"] == "Northwind"
    joined = await client.post(
        f"/api/v1/invitations/{token}", json={"displayName": "My Own Name", "password": PASSWORD}
    )
    assert joined.status_code == 201, joined.text
    assert joined.json()["user"]["displayName"] == "My Own Name"
    me = await client.get("/api/v1/me")  # signed in by the session cookie just set
    assert me.json()["email"] == "New.Person@example.com"
    members = (await client.get(f"/api/v1/organizations/{org.id}/members")).json()
    assert {m["email"] for m in members} >= {"New.Person@example.com"}

    again = await client.post(
        f"/api/v1/invitations/{token}", json={"displayName": "Other", "password": PASSWORD}
    )
    assert again.status_code == 410 and again.json()["code"] == "invitation_not_valid"
    unknown = await client.get("/api/v1/invitations/inv_nothing-like-this")
    assert unknown.status_code == 404 and unknown.json()["code"] == "invitation_not_found"


async def test_an_invitation_expires_after_seven_days(
    client: httpx.AsyncClient, make_user: MakeUser, make_org: MakeOrg, bearer: Bearer, session_factory: Any
) -> None:
    admin = await make_user()
    org = await make_org(admin)
    answer = await invite(client, org, await bearer(admin), "late@example.com")
    expires = answer.json()["expiresAt"]
    created = answer.json()["createdAt"]
    from datetime import datetime

    assert datetime.fromisoformat(expires) - datetime.fromisoformat(created) == timedelta(days=7)
    async with session_factory() as session:
        await session.execute(update(Invitation).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    late = await client.post(
        f"/api/v1/invitations/{token_of(answer)}", json={"displayName": "Late", "password": PASSWORD}
    )
    assert late.status_code == 410


async def test_someone_with_an_account_signs_in_and_accepts_and_only_for_their_address(
    client: httpx.AsyncClient, make_user: MakeUser, make_org: MakeOrg, bearer: Bearer
) -> None:
    admin = await make_user()
    carla = await make_user("carla@example.com", password="pw-1234567890")
    other = await make_user(password="pw-1234567890")
    org = await make_org(admin)
    token = token_of(await invite(client, org, await bearer(admin), "carla@example.com", role="admin"))

    squat = await client.post(
        f"/api/v1/invitations/{token}", json={"displayName": "Mallory", "password": PASSWORD}
    )
    assert squat.status_code == 409 and squat.json()["code"] == "account_exists"
    wrong = await client.post(f"/api/v1/invitations/{token}/accept", headers=await bearer(other))
    assert wrong.status_code == 403 and wrong.json()["code"] == "invitation_for_another_address"
    accepted = await client.post(f"/api/v1/invitations/{token}/accept", headers=await bearer(carla))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["role"] == "admin" and accepted.json()["userId"] == str(carla.id)


async def test_a_pending_invitation_never_blocks_equa_users_create(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    make_org: MakeOrg,
    bearer: Bearer,
    cli_database: dict[str, str],
) -> None:
    admin = await make_user()
    org = await make_org(admin)
    answer = await invite(client, org, await bearer(admin), "real.person@example.com", displayName="Squatter")
    old_token = token_of(answer)
    runner = CliRunner()
    from equa.cli import app as cli

    links = await asyncio.to_thread(runner.invoke, cli, ["users", "invite-link", "real.person@example.com"])
    assert links.exit_code == 0, links.output
    new_token = re.search(r"/invitations/(inv_[\w-]+)", links.output)
    assert new_token is not None and new_token.group(1) != old_token
    assert (await client.get(f"/api/v1/invitations/{old_token}")).status_code == 410  # replaced

    created = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["users", "create", "real.person@example.com", "--name", "Real Person", "--password", PASSWORD],
    )
    assert created.exit_code == 0, created.output
    signed_in = await client.post(
        "/api/v1/session", json={"email": "real.person@example.com", "password": PASSWORD}
    )
    assert signed_in.status_code == 200
    assert signed_in.json()["user"]["displayName"] == "Real Person"

    reset = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["users", "set-password", "real.person@example.com"],
        input="another passphrase 1\nanother passphrase 1\n",
    )
    assert reset.exit_code == 0, reset.output
    new_login = await client.post(
        "/api/v1/session", json={"email": "real.person@example.com", "password": "another passphrase 1"}
    )
    assert new_login.status_code == 200


@pytest.fixture
def cli_database(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    env = {
        "EQUA_DATABASE_URL": settings.resolved_database_url,
        "EQUA_SECRET_KEY": settings.session_secret.get_secret_value(),
        "EQUA_DATA_DIR": str(tmp_path / "cli-data"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


async def test_the_invitation_page_lets_a_newcomer_join(
    client: httpx.AsyncClient, make_user: MakeUser, make_org: MakeOrg, bearer: Bearer
) -> None:
    admin = await make_user()
    org = await make_org(admin, name="Northwind")
    token = token_of(await invite(client, org, await bearer(admin), "page.person@example.com"))

    page = await client.get(f"/invitations/{token}")
    assert page.status_code == 200 and "Join Northwind" in page.text and "Choose a password" in page.text
    short = await client.post(
        f"/invitations/{token}", data={"display_name": "P", "password": "short", "password_again": "short"}
    )
    assert short.status_code == 422 and "at least 10 characters" in short.text
    joined = await client.post(
        f"/invitations/{token}",
        data={"display_name": "Page Person", "password": PASSWORD, "password_again": PASSWORD},
    )
    assert joined.status_code == 303 and joined.headers["location"] == f"/organizations/{org.id}/settings"
    used = await client.get(f"/invitations/{token}")
    assert used.status_code == 410
