"""2,000 members through injected 429/503, dropped connections and replication lag: the group ends exactly right."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sync_support import directory_user, load_tenant, make_team

from equa.microsoft.graph import build_graph_client

pytestmark = [pytest.mark.retry_budget("sync"), pytest.mark.chaos]


async def test_two_thousand_members_with_faults_converge_to_exactly_the_expected_group(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any, settings: Any
) -> None:
    users = [directory_user(i) for i in range(2000)]
    load_tenant(emu, users)
    team = [u["mail"] for u in users[:1900]] + [f"gone{i}@elsewhere.example" for i in range(10)]
    strangers = [u["id"] for u in users[1950:]]
    emu.set_faults(replication_lag_seconds=1.5)
    # A group created through Graph moments before the sync: it has not replicated yet.
    async with build_graph_client(settings) as graph:
        created = await graph.post(
            "/groups",
            json={
                "displayName": "Fresh team",
                "mailEnabled": True,
                "mailNickname": "fresh-team",
                "securityEnabled": False,
                "groupTypes": ["Unified"],
                "members@odata.bind": [graph.url_for(f"directoryObjects/{i}") for i in strangers[:20]],
            },
        )
    group_id = created.json()["id"]
    emu.add_members(group_id, strangers[20:])
    org, admin, _ = await make_team(session_factory, team, group_id=group_id)
    headers = await bearer(admin)
    emu.set_faults(
        # 20 % of answers fail; 429s are the rarer part because each one holds the tenant a whole second.
        rate_429=0.05,
        rate_503=0.15,
        drop_rate=0.03,
        retry_after_seconds=1,
        replication_lag_seconds=1.5,
        seed_random=17,
    )

    url = f"/api/v1/organizations/{org.id}/microsoft/sync-members?wait=60"
    first = await client.post(url, headers=headers)
    assert first.status_code == 200, first.text
    run = first.json()
    assert run["status"] in ("succeeded", "partial"), run
    if run["status"] == "partial":
        second = await client.post(url, headers=headers)
        assert second.status_code == 200, second.text
        assert second.json()["status"] == "succeeded", second.json()
    emu.set_faults(rate_429=0, rate_503=0, drop_rate=0, replication_lag_seconds=0)
    assert set(emu.group_members(group_id)) == {u["id"] for u in users[:1900]} | set(strangers)
    assert emu.stats()["throttled"] > 0  # the faults really happened
