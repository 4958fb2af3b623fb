"""Platform admins: users created with --platform-admin, or named in EQUA_PLATFORM_ADMINS; nobody else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from equa.accounts.models import User
from equa.organizations.models import Organization
from equa.settings import Settings, SettingsError, load_settings

MakeUser = Callable[..., Awaitable[User]]
Bearer = Callable[[User], Awaitable[dict[str, str]]]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Spaces and case as an operator might type them; accounts compare normalized addresses.
    return make_settings(platform_admins=" Ops@Example.com ,second-op@example.com")


async def test_a_user_named_in_the_setting_is_a_platform_admin(
    client: httpx.AsyncClient, make_user: MakeUser, bearer: Bearer
) -> None:
    operator = await make_user("ops@example.COM")
    me = await client.get("/api/v1/me", headers=await bearer(operator))
    assert me.json()["isPlatformAdmin"] is True


async def test_a_user_created_with_the_flag_is_a_platform_admin_and_others_are_not(
    client: httpx.AsyncClient, make_user: MakeUser, bearer: Bearer
) -> None:
    flagged = await make_user(platform_admin=True)
    plain = await make_user("someone@example.com")
    assert (await client.get("/api/v1/me", headers=await bearer(flagged))).json()["isPlatformAdmin"] is True
    assert (await client.get("/api/v1/me", headers=await bearer(plain))).json()["isPlatformAdmin"] is False


async def test_signing_in_reports_platform_admin_from_the_setting(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("second-op@example.com", password="pw-123456")
    response = await client.post(
        "/api/v1/session", json={"email": "second-op@example.com", "password": "pw-123456"}
    )
    assert response.json()["user"]["isPlatformAdmin"] is True


def test_an_entry_that_is_not_an_address_fails_start_up_without_repeating_it() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(platform_admins="ops@example.com, bob-at-example.com")
    message = str(raised.value)
    assert message.startswith("EQUA_PLATFORM_ADMINS: entry 2 is not an email address")
    assert "bob-at-example.com" not in message


async def test_an_operator_who_joins_through_an_invitation_is_told_so_at_once(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Bearer,
) -> None:
    """The new account's first answer agrees with /me: the setting names the address, whoever created it."""
    admin = await make_user()
    org = await make_org(admin)
    invited = await client.post(
        f"/api/v1/organizations/{org.id}/members",
        json={"email": "Ops@example.com"},
        headers=await bearer(admin),
    )
    token = str(invited.json()["invitationUrl"]).rsplit("/invitations/", 1)[1]
    joined = await client.post(
        f"/api/v1/invitations/{token}", json={"displayName": "Ops", "password": "a long enough passphrase"}
    )
    assert joined.status_code == 201, joined.text
    assert joined.json()["user"]["isPlatformAdmin"] is True
    assert (await client.get("/api/v1/me")).json()["isPlatformAdmin"] is True
