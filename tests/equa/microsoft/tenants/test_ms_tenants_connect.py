"""Multi-tenant mode: connecting an organization's tenant through admin consent, bad answers refused, disconnecting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from ms_support import Team, seed_group_id
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenant_support import (
    CONTOSO,
    FABRIKAM,
    FABRIKAM_RESEARCH,
    PUBLIC_URL,
    browser,
    connect,
    consent_location,
    multi_tenant_values,
    query_of,
)

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.microsoft.graph.permissions import group_scope_of, permission_names
from equa.microsoft.tenants.connection import consent_url
from equa.microsoft.tenants.state import sign_state
from equa.organizations.models import Membership, Role
from equa.settings import Settings


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings], graph_emulator_multi_tenant: Any) -> Settings:
    return emulator_settings("api", **multi_tenant_values())


async def status_of(client: httpx.AsyncClient, team: Team) -> dict[str, Any]:
    response = await client.get(team.url("status"), headers=team.admin_headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_connect_answers_the_admin_consent_address(
    client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    response = await client.post(team.url("connect"), headers=team.admin_headers)
    assert response.status_code == 200, response.text
    url = response.json()["consentUrl"]
    assert url.startswith(f"{emu.base_url}/organizations/v2.0/adminconsent?")
    query = query_of(url)
    assert query["client_id"] == emu.client_id
    assert query["scope"] == "https://graph.microsoft.com/.default"
    assert query["redirect_uri"] == f"{PUBLIC_URL}/microsoft/consent-callback"
    assert query["state"]
    # Not connected yet: nothing of Microsoft 365 can be used, and the answer says how to connect.
    status = await status_of(client, team)
    assert status["connection"] == "not_connected"
    assert "Connect Microsoft 365" in status["action"]
    refused = await client.get(team.url("groups"), headers=team.admin_headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "microsoft_not_connected"
    assert "Connect Microsoft 365" in refused.json()["action"]
    # A plain member may not start it.
    denied = await client.post(team.url("connect"), headers=team.member_headers)
    assert denied.status_code == 403


async def test_the_round_trip_connects_the_tenant_after_proving_it(
    app: FastAPI, client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    async with browser(app, team.admin.email) as admin:
        back = await connect(emu, client, admin, team.org.id, team.admin_headers, FABRIKAM)
        assert back.status_code == 303
        assert (
            back.headers["location"] == f"/organizations/{team.org.id}/settings?microsoft=connected#microsoft"
        )
        page = await admin.get(back.headers["location"])
        assert "Microsoft 365 is connected." in page.text
        assert 'data-role="tenant-name">Fabrikam<' in page.text
    status = await status_of(client, team)
    assert status["connection"] == "connected"
    assert status["tenantId"] == FABRIKAM
    assert status["tenantName"] == "Fabrikam"
    assert status["tenantDomain"] == "fabrikam.onmicrosoft.com"  # the default verified domain
    assert status["action"] is None
    assert status["adminConsentUrl"] is None  # consent is per organization, through connect
    audit = await client.get(team.url("audit"), headers=team.admin_headers)
    connected = [e for e in audit.json()["items"] if e["action"] == "tenant.connect"]
    assert connected and connected[0]["target"] == FABRIKAM
    # Connected twice is refused: disconnect first.
    again = await client.post(team.url("connect"), headers=team.admin_headers)
    assert again.status_code == 409
    assert again.json()["code"] == "microsoft_already_connected"


async def test_cancel_comes_back_to_the_settings_page_with_the_action(
    app: FastAPI, client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    location = await consent_location(emu, client, team.org.id, team.admin_headers, FABRIKAM, accept=False)
    assert query_of(location)["error"] == "access_denied"
    async with browser(app, team.admin.email) as admin:
        back = await admin.get(location)
        assert back.status_code == 303
        assert back.headers["location"].endswith("?microsoft_error=consent_declined#microsoft")
        page = await admin.get(back.headers["location"])
        assert page.status_code == 200
        assert "the consent was cancelled or declined" in page.text
        assert "choose Accept" in page.text
        assert "Connect Microsoft 365" in page.text
    assert (await status_of(client, team))["connection"] == "not_connected"


async def test_an_answer_is_used_once(app: FastAPI, client: httpx.AsyncClient, team: Team, emu: Any) -> None:
    location = await consent_location(emu, client, team.org.id, team.admin_headers, FABRIKAM)
    async with browser(app, team.admin.email) as admin:
        first = await admin.get(location)
        assert first.headers["location"].endswith("?microsoft=connected#microsoft")
        disconnected = await client.delete(team.url("connection"), headers=team.admin_headers)
        assert disconnected.status_code == 204
        replayed = await admin.get(location)
        assert replayed.status_code == 303
        assert replayed.headers["location"].endswith("?microsoft_error=state_used#microsoft")
    assert (await status_of(client, team))["connection"] == "not_connected"


async def test_expired_missing_and_altered_states_are_refused(
    app: FastAPI,
    client: httpx.AsyncClient,
    team: Team,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        old = await consent_url(
            session, settings, team.org, team.admin, now=utcnow() - timedelta(minutes=15, seconds=5)
        )
        await session.commit()
    expired = query_of(old)["state"]
    callback = f"/microsoft/consent-callback?admin_consent=True&tenant={FABRIKAM}"
    async with browser(app, team.admin.email) as admin:
        answer = await admin.get(f"{callback}&state={expired}")
        assert answer.headers["location"].endswith("?microsoft_error=state_expired#microsoft")
        for state in ("", expired[:-4] + "AAAA", "not-a-state"):
            page = await admin.get(f"{callback}&state={state}")
            assert page.status_code == 400
            assert "Start again with Connect Microsoft 365" in page.text
            assert "Traceback" not in page.text
    assert (await status_of(client, team))["connection"] == "not_connected"


async def test_a_state_bound_to_another_admin_or_organization_is_refused(
    app: FastAPI,
    client: httpx.AsyncClient,
    team: Team,
    emu: Any,
    settings: Settings,
    make_user: Callable[..., Awaitable[User]],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    second_admin = await make_user("second-admin@example.com", password="another pass phrase")
    async with session_factory() as session:
        session.add(Membership(organization_id=team.org.id, user_id=second_admin.id, role=Role.ADMIN))
        await session.commit()
    # Started by the first admin, brought back in the second admin's browser.
    location = await consent_location(emu, client, team.org.id, team.admin_headers, FABRIKAM)
    async with browser(app, second_admin.email, "another pass phrase") as other:
        answer = await other.get(location)
        assert answer.headers["location"].endswith("?microsoft_error=state_other_admin#microsoft")
    # A state signed for another organization than the round trip it names.
    async with session_factory() as session:
        url = await consent_url(session, settings, team.org, team.admin)
        await session.commit()
    from equa.microsoft.tenants.state import read_state

    claims = read_state(settings.session_secret.get_secret_value(), query_of(url)["state"], utcnow())
    forged = sign_state(
        settings.session_secret.get_secret_value(),
        claims.state_id,
        team.other_org.id,
        team.admin.id,
        utcnow() + timedelta(minutes=10),
    )
    async with browser(app, team.admin.email) as admin:
        answer = await admin.get(
            f"/microsoft/consent-callback?admin_consent=True&tenant={FABRIKAM}&state={forged}"
        )
        assert answer.headers["location"].endswith("?microsoft_error=state_other_org#microsoft")
    assert (await status_of(client, team))["connection"] == "not_connected"


async def test_a_tenant_that_refuses_the_app_after_consent_is_not_stored(
    app: FastAPI, client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    location = await consent_location(emu, client, team.org.id, team.admin_headers, FABRIKAM)
    emu.revoke_consent(FABRIKAM)  # gone again before Equa could prove it
    async with browser(app, team.admin.email) as admin:
        back = await admin.get(location)
        assert back.headers["location"].endswith("?microsoft_error=tenant_refused#microsoft")
        page = await admin.get(back.headers["location"])
        assert "the tenant still refused" in page.text
    assert (await status_of(client, team))["connection"] == "not_connected"


async def test_disconnect_unlinks_the_group_and_forgets_the_tenant_and_reconnecting_works(
    app: FastAPI, client: httpx.AsyncClient, team: Team, emu: Any
) -> None:
    async with browser(app, team.admin.email) as admin:
        await connect(emu, client, admin, team.org.id, team.admin_headers, FABRIKAM)
        linked = await client.post(
            team.url("link-group"), json={"groupId": FABRIKAM_RESEARCH}, headers=team.admin_headers
        )
        assert linked.status_code == 200, linked.text
        gone = await client.delete(team.url("connection"), headers=team.admin_headers)
        assert gone.status_code == 204
        status = await status_of(client, team)
        assert status["connection"] == "not_connected"
        assert status["linked"] is False
        assert status["tenantId"] is None
        assert FABRIKAM not in (app.state.graph.tenant_clients or ())
        nothing = await client.delete(team.url("connection"), headers=team.admin_headers)
        assert nothing.status_code == 409
        # Reconnecting works, to the same tenant or another one; the group is still there to link again.
        await connect(emu, client, admin, team.org.id, team.admin_headers, CONTOSO)
        assert (await status_of(client, team))["tenantId"] == CONTOSO
        await client.delete(team.url("connection"), headers=team.admin_headers)
        await connect(emu, client, admin, team.org.id, team.admin_headers, FABRIKAM)
    again = await client.post(
        team.url("link-group"), json={"groupId": FABRIKAM_RESEARCH}, headers=team.admin_headers
    )
    assert again.status_code == 200, again.text
    assert (await status_of(client, team))["group"]["displayName"] == "Fabrikam Research"


async def test_a_tenant_serves_several_organizations_and_a_group_still_serves_one(
    app: FastAPI,
    client: httpx.AsyncClient,
    team: Team,
    emu: Any,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Any]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    other_admin = await make_user("other-admin@example.com", password="other pass phrase")
    other_org = await make_org(other_admin, name="Second team")
    other_headers = await bearer(other_admin)
    async with browser(app, team.admin.email) as admin:
        await connect(emu, client, admin, team.org.id, team.admin_headers, CONTOSO)
    async with browser(app, other_admin.email, "other pass phrase") as admin:
        await connect(emu, client, admin, other_org.id, other_headers, CONTOSO)
    engineering = seed_group_id("engineering")
    first = await client.post(
        team.url("link-group"), json={"groupId": engineering}, headers=team.admin_headers
    )
    assert first.status_code == 200, first.text
    second = await client.post(
        team.url("link-group", other_org), json={"groupId": engineering}, headers=other_headers
    )
    assert second.status_code == 409
    status = (await client.get(team.url("status", other_org), headers=other_headers)).json()
    assert status["connection"] == "connected" and status["tenantId"] == CONTOSO


async def test_the_connect_card_names_the_permissions_of_the_one_list_in_code(
    app: FastAPI, team: Team
) -> None:
    async with browser(app, team.admin.email) as admin:
        card = await admin.get(f"/organizations/{team.org.id}/settings/microsoft/connection")

    assert card.status_code == 200, card.text
    assert "Connect Microsoft 365" in card.text
    named = ", ".join(permission_names(group_scope_of(app.state.settings)))
    assert f'<span data-role="permissions">{named}</span>' in card.text
    assert "Organization.Read.All" in named  # multi-tenant mode proves each tenant with it
