"""Chaos: create-group whose answer is lost after Microsoft 365 made the group, retried by the admin with and
without an Idempotency-Key, next to throttling and dropped connections: always exactly one group."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from chaos_support import Caller, Tally, tenant_members

from equa.settings import Settings

pytestmark = pytest.mark.chaos


@pytest.fixture
def settings(emulator_settings: Callable[..., Settings]) -> Settings:
    # A short retry budget: the look-ups during the outage give up within seconds.
    return emulator_settings("chaos", graph_max_retry_wait_seconds=2.0)


class LostAnswer:
    """The network between the app and Microsoft 365 fails right after Graph made the group: the 201 is lost, and
    nothing gets through until `heal()`. Installed as httpx event hooks on the app's Graph connection; the
    emulator still does the real work (it has no fault that drops a connection after executing a request)."""

    def __init__(self, app: Any) -> None:
        self.hooks = app.state.graph._http.event_hooks
        self.down = False
        self.lost = 0
        self.hooks["request"].append(self.before_request)
        self.hooks["response"].append(self.after_response)

    async def before_request(self, request: httpx.Request) -> None:
        if self.down:
            raise httpx.ConnectError("network unreachable", request=request)

    async def after_response(self, response: httpx.Response) -> None:
        request = response.request
        creating = request.method == "POST" and request.url.path.rstrip("/").endswith("/v1.0/groups")
        if creating and response.status_code == 201 and not self.lost:
            self.lost += 1
            self.down = True
            raise httpx.ReadError("connection reset by peer", request=request)

    def heal(self) -> None:
        self.down = False

    def remove(self) -> None:
        self.hooks["request"].remove(self.before_request)
        self.hooks["response"].remove(self.after_response)


@pytest.mark.parametrize("idempotency_key", [None, "create-once-7"], ids=["without-key", "with-key"])
async def test_a_create_whose_answer_was_lost_and_then_retried_makes_one_group(
    app: Any,
    client: httpx.AsyncClient,
    emu: Any,
    make_user: Any,
    make_org: Any,
    bearer: Any,
    idempotency_key: str | None,
) -> None:
    admin = await make_user(tenant_members()[2]["mail"])
    org = await make_org(admin)
    tally = Tally()
    caller = Caller(client, f"/api/v1/organizations/{org.id}/microsoft", await bearer(admin), tally)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    emu.set_faults(**{"rate_429": 0.1, "rate_503": 0.05, "seed_random": 3})
    request = {"displayName": "Lost Answer"}

    network = LostAnswer(app)
    try:
        lost = await caller.once("POST", "create-group", json=request, headers=headers)
        # Microsoft 365 made the group, but neither its answer nor a look-up got back: try again later.
        assert network.lost == 1
        assert lost.status_code == 503, lost.text
        assert lost.json()["code"] == "microsoft_unavailable"
        made = emu.find_groups(mailNickname="lost-answer")
        assert len(made) == 1
        network.heal()
        again = await caller.call("POST", "create-group", json=request, headers=headers)
    finally:
        network.remove()
        emu.set_faults()
    assert again.status_code == 201, again.text
    assert again.json()["id"] == made[0]["id"]
    groups = emu.find_groups(displayName="Lost Answer")
    assert [g["id"] for g in groups] == [made[0]["id"]], "a second group was created"
    status = (await caller.call("GET", "status")).json()
    assert status["groupId"] == made[0]["id"]

    # Once linked, yet another repeat makes nothing new either.
    repeat = await caller.call("POST", "create-group", json=request, headers=headers)
    assert repeat.status_code in (201, 409), repeat.text
    assert [g["id"] for g in emu.find_groups(displayName="Lost Answer")] == [made[0]["id"]]
    print(
        tally.summary(f"create-group, answer lost, retried {'with' if idempotency_key else 'without'} a key")
    )


async def test_concurrent_creates_under_throttling_make_one_group_per_organization(
    client: httpx.AsyncClient, emu: Any, make_user: Any, make_org: Any, bearer: Any
) -> None:
    tally = Tally()
    callers = []
    for index in range(3):
        admin = await make_user(tenant_members()[3 + index]["mail"])
        org = await make_org(admin)
        callers.append(
            Caller(client, f"/api/v1/organizations/{org.id}/microsoft", await bearer(admin), tally)
        )
    emu.set_faults(
        **{
            "rate_429": 0.15,
            "rate_503": 0.1,
            "rate_504": 0.05,
            "drop_rate": 0.05,
            "seed_random": 8,
        }
    )
    # Each organization's admin double-clicks: two identical requests at once, then repeats until one answers.
    attempts = []
    for index, caller in enumerate(callers):
        headers = {"Idempotency-Key": f"double-click-{index}"} if index % 2 == 0 else {}
        request = {"displayName": f"Busy Team {index}", "mailNickname": f"busy-team-{index}"}
        for _ in range(2):
            attempts.append(caller.call("POST", "create-group", json=request, headers=headers))
    answers = await asyncio.gather(*attempts)
    tally.add_faults(emu.stats())
    emu.set_faults()
    for index, caller in enumerate(callers):
        pair = answers[2 * index : 2 * index + 2]
        assert any(a.status_code == 201 for a in pair), [a.text for a in pair]
        groups = emu.find_groups(mailNickname=f"busy-team-{index}")
        assert len(groups) == 1, groups
        status = (await caller.call("GET", "status")).json()
        assert status["groupId"] == groups[0]["id"]
    print(tally.summary("double-clicked create-group under throttling"))
