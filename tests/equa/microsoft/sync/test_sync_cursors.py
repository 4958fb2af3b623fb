"""Every keyset list of the sync (runs, a run's outcomes, flagged members) pages with signed cursors: an edited
cursor, or one carried to another list or another run, answers 422 and serves nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from sync_support import directory_user, load_tenant, make_team

pytestmark = pytest.mark.retry_budget("sync")


def payload_of(cursor: str) -> dict[str, Any]:
    data = cursor.split(".", 1)[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    return decoded


def with_payload(cursor: str, payload: dict[str, Any]) -> str:
    data = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{data}.{cursor.split('.', 1)[1]}"


async def test_sync_lists_refuse_edited_and_carried_cursors(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    team = [directory_user(i) for i in range(3)]
    strangers = [directory_user(i, prefix="stranger") for i in range(3)]
    tenant = load_tenant(
        emu, [*team, *strangers], members=[u["id"] for u in strangers], owners=[strangers[0]["id"]]
    )
    org, admin, _ = await make_team(session_factory, [u["mail"] for u in team], group_id=tenant.group_id)
    headers = await bearer(admin)
    base = f"/api/v1/organizations/{org.id}/microsoft"
    run_ids = []
    for body in ({"dryRun": True}, {}):
        run = await client.post(f"{base}/sync-members?wait=30", json=body, headers=headers)
        assert run.status_code == 200 and run.json()["status"] == "succeeded", run.text
        run_ids.append(run.json()["id"])
    lists = {
        "runs": f"{base}/sync-runs",
        "outcomes": f"{base}/sync-runs/{run_ids[1]}/outcomes",
        "outcomes of the other run": f"{base}/sync-runs/{run_ids[0]}/outcomes",
        "flagged": f"{base}/flagged-members",
    }

    cursors = {}
    for name, path in lists.items():
        first = await client.get(path, params={"limit": "1"}, headers=headers)
        assert first.status_code == 200, (name, first.text)
        cursors[name] = first.json()["nextCursor"]
        assert cursors[name], f"{name}: one item per page leaves more to read"
        assert set(payload_of(cursors[name])) == {
            "n",
            "p",
        }  # a keyset position and the page size, nothing else

    for name, path in lists.items():
        cursor = cursors[name]
        forged = {
            "a bigger page": with_payload(cursor, {**payload_of(cursor), "n": 200}),
            "another position": with_payload(
                cursor, {**payload_of(cursor), "p": ["9999-12-31T00:00:00", "z"]}
            ),
            "a broken signature": cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),
            **{f"the cursor of {other}": cursors[other] for other in lists if other != name},
        }
        for what, attempt in forged.items():
            refused = await client.get(path, params={"cursor": attempt}, headers=headers)
            assert refused.status_code == 422, (name, what, refused.text)
            assert refused.json()["errors"][0]["field"] == "cursor", (name, what)
        honest = await client.get(path, params={"cursor": cursor}, headers=headers)
        assert honest.status_code == 200, (name, honest.text)
        assert len(honest.json()["items"]) == 1
