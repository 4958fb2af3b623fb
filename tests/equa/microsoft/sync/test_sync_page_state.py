"""What the page and the status show belongs to the linked group: a new link starts clean, and is previewed at once."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from sync_support import directory_user, load_tenant, make_team

from equa.organizations.models import Membership, Role

pytestmark = pytest.mark.retry_budget("sync")

PASSWORD = "a long passphrase 1"


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def finished(client: httpx.AsyncClient, org_id: Any, run_id: str, headers: Any) -> dict[str, Any]:
    for _ in range(300):
        run: dict[str, Any] = (await client.get(url(org_id, f"sync-runs/{run_id}"), headers=headers)).json()
        if run["status"] not in {"queued", "running"}:
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish")


async def test_a_new_link_starts_clean_and_is_previewed_while_the_old_groups_runs_stay_listed(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any, make_user: Any, sign_in: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    # The first group holds a stranger (person1); the second, another one (person2).
    tenant = load_tenant(emu, users, members=[users[1]["id"]])
    second = emu.add_group(
        members=[users[2]["id"]],
        displayName="Second team",
        groupTypes=["Unified"],
        mailEnabled=True,
        securityEnabled=False,
        mailNickname="second-team",
        visibility="Private",
    )["id"]
    org, admin, _ = await make_team(session_factory, [users[0]["mail"]], group_id=tenant.group_id)
    headers = await bearer(admin)
    first = (await client.post(url(org.id, "sync-members?wait=30"), headers=headers)).json()
    assert first["counts"]["flagged"] == 1, first
    [flag] = (await client.get(url(org.id, "flagged-members"), headers=headers)).json()["items"]
    await client.post(url(org.id, f"flagged-members/{flag['id']}/dismiss"), headers=headers)

    page_admin = await make_user(password=PASSWORD)
    async with session_factory() as session:
        session.add(Membership(organization_id=org.id, user_id=page_admin.id, role=Role.ADMIN))
        await session.commit()
    csrf = {"X-CSRF-Token": await sign_in(page_admin, PASSWORD)}
    base = f"/organizations/{org.id}/settings/microsoft"
    assert (await client.delete(f"{base}/link", headers=csrf)).status_code == 200
    linked = await client.post(f"{base}/link", data={"groupId": second}, headers=csrf)
    assert linked.status_code == 200, linked.text
    # The section comes back with a preview of the new group running in the sync result's place.
    found = re.search(r'data-role="sync-progress" hx-get="[^"]*/sync-runs/([0-9a-f-]{36})"', linked.text)
    assert found is not None, linked.text
    preview = await finished(client, org.id, found.group(1), headers)
    assert preview["dryRun"] is True and preview["groupId"] == second and preview["counts"]["flagged"] == 1

    status = (await client.get(url(org.id, "status"), headers=headers)).json()
    assert status["lastSync"] is None  # the new group has never been synced
    assert status["lastPreview"]["id"] == preview["id"]
    # Neither the old group's flags nor its dismissals show; the flagged list tells what the preview found.
    assert (await client.get(url(org.id, "flagged-members"), headers=headers)).json()["items"] == []
    flagged = (await client.get(f"{base}/flagged")).text
    assert 'data-role="preview-flagged"' in flagged and f'data-directory-id="{users[2]["id"]}"' in flagged
    assert users[1]["mail"] not in flagged
    # The old group's run stays in the run list.
    listed = (await client.get(url(org.id, "sync-runs"), headers=headers)).json()["items"]
    assert {r["id"] for r in listed} == {first["id"], preview["id"]}

    real = (await client.post(url(org.id, "sync-members?wait=30"), headers=headers)).json()
    assert real["counts"]["flagged"] == 1, real
    flags = (await client.get(url(org.id, "flagged-members"), headers=headers)).json()["items"]
    assert [(f["email"], f["status"]) for f in flags] == [(users[2]["mail"], "pending")]
    status = (await client.get(url(org.id, "status"), headers=headers)).json()
    assert status["lastSync"]["id"] == real["id"]
