"""Every error the sync API answers names the problem and tells the admin what to do next, as documented."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sync_support import directory_user, load_tenant, make_team

pytestmark = pytest.mark.retry_budget("sync")


UNKNOWN = "00000000-0000-0000-0000-000000000000"


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


def assert_actionable(response: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    assert body["action"], f"{code} carries no action: {body}"
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field], body


async def test_sync_errors_carry_an_action(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(2)]
    tenant = load_tenant(emu, users, members=[users[1]["id"]])
    org, admin, _ = await make_team(session_factory, [users[0]["mail"]], group_id=tenant.group_id)
    headers = await bearer(admin)
    run = (await client.post(url(org.id, "sync-members?wait=30"), headers=headers)).json()
    assert run["status"] == "succeeded", run

    cases = [
        ("GET", f"sync-runs/{UNKNOWN}", 404, "sync_run_not_found", None),
        ("GET", f"sync-runs/{UNKNOWN}/outcomes", 404, "sync_run_not_found", None),
        ("POST", f"flagged-members/{UNKNOWN}/invite", 404, "flagged_member_not_found", None),
        ("POST", f"flagged-members/{UNKNOWN}/dismiss", 404, "flagged_member_not_found", None),
        ("GET", "flagged-members?status=maybe", 422, "validation_failed", "status"),
        ("GET", f"sync-runs/{run['id']}/outcomes?outcome=vanished", 422, "validation_failed", "outcome"),
        ("GET", f"sync-runs/{run['id']}/outcomes?cursor=%%%", 422, "validation_failed", "cursor"),
        ("GET", "flagged-members?cursor=bm90LWEtdXVpZA", 422, "validation_failed", "cursor"),
        ("GET", "sync-runs/not-a-run", 422, "validation_failed", "run_id"),
    ]
    for method, path, status, code, field in cases:
        assert_actionable(
            await client.request(method, url(org.id, path), headers=headers), status, code, field
        )

    # A run of another organization is as unknown as one that never existed.
    other, other_admin, _ = await make_team(session_factory, [], group_id=None)
    foreign = await client.get(url(other.id, f"sync-runs/{run['id']}"), headers=await bearer(other_admin))
    assert_actionable(foreign, 404, "sync_run_not_found")
    unlinked = await client.post(url(other.id, "sync-members"), headers=await bearer(other_admin))
    assert_actionable(unlinked, 409, "group_not_linked")


async def test_a_flagged_member_of_another_organization_is_not_found(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(2)]
    tenant = load_tenant(emu, users, members=[u["id"] for u in users])
    org, admin, _ = await make_team(session_factory, [], group_id=tenant.group_id)
    headers = await bearer(admin)
    assert (await client.post(url(org.id, "sync-members?wait=30"), headers=headers)).json()["counts"][
        "flagged"
    ] == 2
    flag = (await client.get(url(org.id, "flagged-members"), headers=headers)).json()["items"][0]

    other, other_admin, _ = await make_team(session_factory, [], group_id=str(uuid.uuid4()))
    other_headers = await bearer(other_admin)
    for action in ("invite", "dismiss"):
        response = await client.post(
            url(other.id, f"flagged-members/{flag['id']}/{action}"), headers=other_headers
        )
        assert_actionable(response, 404, "flagged_member_not_found")
    still = (await client.get(url(org.id, "flagged-members"), headers=headers)).json()["items"]
    assert {f["status"] for f in still} == {"pending"}
