"""Chaos: an admin's whole working session (create, sync, members, flagged decisions, unlink, relink) while Graph
throws 429/503/504, drops connections, loses answers to work it did, spikes latency and lags replication; nothing
is lost and no group doubles."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from chaos_support import Caller, Tally, tenant_members

pytestmark = [pytest.mark.retry_budget("chaos"), pytest.mark.chaos]

MIXED_FAULTS: dict[str, Any] = {
    "rate_429": 0.1,
    "rate_503": 0.1,
    "rate_504": 0.05,
    "drop_rate": 0.05,
    "lost_response_rate": 0.04,  # Graph did the work, the answer never came back
    "latency_ms": 10,
    "jitter_ms": 60,
    "replication_lag_seconds": 1.0,
    "retry_after_seconds": 1,
    "seed_random": 11,
}
LATENCY_SPIKE: dict[str, Any] = {**MIXED_FAULTS, "latency_ms": 600, "jitter_ms": 400, "seed_random": 12}


async def test_an_admin_session_under_mixed_faults_loses_nothing(
    client: httpx.AsyncClient, emu: Any, make_user: Any, make_org: Any, bearer: Any
) -> None:
    people = tenant_members()
    admin_person, team_people = people[0], people[1:12]
    strangers = [p["id"] for p in people[20:24]]  # in the group, not on the team
    walk_in = people[30]  # added to the group by hand: not on the team either
    admin = await make_user(admin_person["mail"])
    team = [await make_user(p["mail"]) for p in team_people]
    outsiders = [await make_user(f"outsider{i}@elsewhere.example") for i in range(2)]
    org = await make_org(admin, members=[*team, *outsiders])
    tally = Tally()
    caller = Caller(client, f"/api/v1/organizations/{org.id}/microsoft", await bearer(admin), tally)

    emu.set_faults(**MIXED_FAULTS)

    # create-group, sent twice at once and then repeated, all with one Idempotency-Key: one group.
    key = {"Idempotency-Key": "chaos-create-1"}
    request = {"displayName": "Chaos Team", "description": "Kept in step under faults"}
    await asyncio.gather(
        caller.once("POST", "create-group", json=request, headers=key),
        caller.once("POST", "create-group", json=request, headers=key),
    )
    created = await caller.call("POST", "create-group", json=request, headers=key)
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    assert [g["id"] for g in emu.find_groups(mailNickname="chaos-team")] == [group_id]
    emu.add_members(group_id, strangers)

    # A sync in the background while the admin reads and changes the group.
    started = await caller.call("POST", "sync-members", json={})
    assert started.status_code in (200, 202), started.text
    first_run = started.json()["id"]
    emu.set_faults(**LATENCY_SPIKE)
    reads = await asyncio.gather(
        caller.call("GET", "status"),
        caller.call("GET", "group"),
        caller.call("GET", "group/members", limit=5),
        caller.call("GET", "groups", search="Chaos"),
        caller.call("POST", "group/members", json={"email": walk_in["mail"]}),
        caller.call("DELETE", f"group/members/{strangers[3]}"),
        caller.call("POST", "sync-members", json={}),
    )
    emu.set_faults(**MIXED_FAULTS)
    assert [r.status_code for r in reads[:4]] == [200, 200, 200, 200], [r.text for r in reads]
    assert reads[4].status_code in (200, 201) and reads[5].status_code == 204, [reads[4].text, reads[5].text]
    # Asking while a run is active returns that run: never a second one.
    assert reads[6].json()["id"] == first_run or reads[6].json()["status"] != "queued"
    run = await caller.finished_run(first_run)
    if run["status"] == "partial":
        run = await caller.sync()
    assert run["status"] == "succeeded", run

    # Flagged members: the strangers (and the walk-in, once a run has seen them) wait for a decision.
    flags = await caller.call("GET", "flagged-members", status="pending")
    assert flags.status_code == 200, flags.text
    by_directory_id = {f["directoryId"]: f for f in flags.json()["items"]}
    assert set(strangers[:3]) <= set(by_directory_id), flags.json()
    invited = await caller.call("POST", f"flagged-members/{by_directory_id[strangers[0]]['id']}/invite")
    dismissed = await caller.call("POST", f"flagged-members/{by_directory_id[strangers[1]]['id']}/dismiss")
    assert (invited.status_code, dismissed.status_code) == (200, 200), [invited.text, dismissed.text]

    # Another run under faults: the admin's decisions stand (the walk-in was added by hand, so is never flagged).
    run = await caller.sync()
    assert run["status"] in ("succeeded", "partial"), run
    decided = (await caller.call("GET", "flagged-members", limit=200)).json()["items"]
    decided_status = {f["directoryId"]: f["status"] for f in decided}
    assert decided_status.get(strangers[1]) == "dismissed", decided
    assert decided_status.get(strangers[2]) == "pending", decided
    assert walk_in["id"] not in decided_status, decided

    # Unlink and link the same group again: the runs survive, and the new link starts clean.
    assert (await caller.call("DELETE", "unlink-group")).status_code == 204
    assert (await caller.call("GET", "status")).json()["linked"] is False
    relinked = await caller.call("POST", "link-group", json={"groupId": group_id})
    assert relinked.status_code == 200, relinked.text
    runs = await caller.call("GET", "sync-runs")
    assert runs.status_code == 200
    assert all(r["status"] in ("succeeded", "partial", "failed") for r in runs.json()["items"]), runs.json()

    tally.add_faults(emu.stats())
    emu.set_faults()
    # At most one extra run once Graph behaves: the group is exactly the team plus who was there already.
    final = await caller.sync()
    assert final["status"] == "succeeded", final
    team_ids = {p["id"] for p in [admin_person, *team_people]}
    expected = team_ids | set(strangers[:3]) | {walk_in["id"]}
    assert set(emu.group_members(group_id)) == expected
    assert [g["id"] for g in emu.find_groups(mailNickname="chaos-team")] == [group_id]

    # No flagged member is dropped: everyone in the group who is not on the team has a flag again. Decisions made
    # under the earlier link (the dismissal, the hand-added walk-in) do not carry over to the new one.
    everything = (await caller.call("GET", "flagged-members", limit=200)).json()["items"]
    status_of = {f["directoryId"]: f["status"] for f in everything}
    assert status_of.get(strangers[1]) == "pending", everything
    assert status_of.get(strangers[2]) == "pending", everything
    assert status_of.get(walk_in["id"]) == "pending", everything
    assert status_of.get(strangers[0]) in (None, "invited", "pending"), everything  # invited, not joined yet
    outcomes = await caller.call("GET", f"sync-runs/{final['id']}/outcomes", outcome="notInTenant")
    assert {o["email"] for o in outcomes.json()["items"]} == {u.email for u in outsiders}

    assert tally.faults, "the emulator injected no faults"
    assert sum(tally.runs.values()) >= 3
    print(tally.summary("admin session under mixed faults"))
