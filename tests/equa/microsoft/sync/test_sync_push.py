"""Team changes pushed to the group (autoSync on): a targeted run for just the people a change names.

Changes come the way users make them (an invitation accepted, a member removed through the API) or, where the
service has no endpoint yet (re-activating a user, changing an address), as the same ORM change on the service's
own database sessions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sync_support import directory_user, load_tenant, make_team

from equa.accounts.models import User, normalize_email
from equa.accounts.tokens import create_api_token
from equa.app import create_app
from equa.microsoft.models import RunStatus, SyncRun
from equa.microsoft.sync.runs import wait_for_run
from equa.microsoft.tasks import QUEUE_NAME
from equa.organizations.models import Membership, Role

pytestmark = pytest.mark.retry_budget("sync")

PASSWORD = "correct horse battery staple"


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def join(client: httpx.AsyncClient, org_id: Any, headers: dict[str, str], email: str) -> None:
    """The admin invites the address, and its owner accepts: they are on the team when this returns."""
    invited = await client.post(
        f"/api/v1/organizations/{org_id}/members", json={"email": email, "role": "member"}, headers=headers
    )
    assert invited.status_code == 201, invited.text
    token = invited.json()["invitationUrl"].rsplit("/invitations/", 1)[1]
    accepted = await client.post(
        f"/api/v1/invitations/{token}", json={"displayName": email.split("@")[0], "password": PASSWORD}
    )
    assert accepted.status_code == 201, accepted.text


async def until(check: Callable[[], Awaitable[bool] | bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time allowed")


async def push_runs(session_factory: Any, org_id: uuid.UUID) -> list[SyncRun]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(SyncRun)
            .where(SyncRun.organization_id == org_id, SyncRun.trigger == "push")
            .order_by(SyncRun.created_at)
        )
        return list(rows)


async def finished_push(session_factory: Any, org_id: uuid.UUID, count: int = 1) -> list[SyncRun]:
    async def there() -> bool:
        return len(await push_runs(session_factory, org_id)) >= count

    await until(there)
    found = []
    for run in await push_runs(session_factory, org_id):
        finished = await wait_for_run(session_factory, run.id, 15)
        assert finished is not None
        found.append(finished)
    return found


async def user_id_of(session_factory: Any, email: str) -> uuid.UUID:
    async with session_factory() as session:
        user = await session.scalar(select(User).where(User.email_normalized == normalize_email(email)))
        assert user is not None
        return user.id


async def test_a_member_who_joins_is_added_to_the_group_with_a_lookup_and_a_write(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users)
    # person0 is on the team but not in the group: a push names only who changed, so it stays out.
    org, admin, _ = await make_team(
        session_factory, [users[0]["mail"]], group_id=tenant.group_id, auto_sync=True
    )
    headers = await bearer(admin)
    emu.reset_stats()

    await join(client, org.id, headers, users[1]["mail"])
    await until(lambda: users[1]["id"] in emu.group_members(tenant.group_id))

    (run,) = await finished_push(session_factory, org.id)
    assert run.status == RunStatus.SUCCEEDED.value and run.counts["added"] == 1
    joined = str(await user_id_of(session_factory, users[1]["mail"]))
    assert run.targets == [joined]
    assert emu.stats()["graph_requests"] <= 2, emu.stats()
    assert emu.group_members(tenant.group_id) == [users[1]["id"]]
    listed = (await client.get(url(org.id, "sync-runs"), headers=headers)).json()["items"]
    assert listed[0]["trigger"] == "push" and listed[0]["targets"] == [joined]
    outcomes = (await client.get(url(org.id, f"sync-runs/{run.id}/outcomes"), headers=headers)).json()[
        "items"
    ]
    assert [(o["outcome"], o["email"]) for o in outcomes] == [("added", users[1]["mail"])]


async def test_a_flagged_group_member_who_is_invited_and_joins_is_no_longer_flagged(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(2)]
    tenant = load_tenant(emu, users, members=[users[1]["id"]])
    org, admin, _ = await make_team(session_factory, [], group_id=tenant.group_id, auto_sync=True)
    headers = await bearer(admin)
    first = await client.post(url(org.id, "sync-members?wait=30"), json={}, headers=headers)
    assert first.json()["counts"]["flagged"] == 1
    (flag,) = (await client.get(url(org.id, "flagged-members"), headers=headers)).json()["items"]
    invited = await client.post(url(org.id, f"flagged-members/{flag['id']}/invite"), headers=headers)
    assert invited.status_code == 200, invited.text
    token = invited.json()["invitationUrl"].rsplit("/invitations/", 1)[1]
    accepted = await client.post(
        f"/api/v1/invitations/{token}", json={"displayName": "P1", "password": PASSWORD}
    )
    assert accepted.status_code == 201, accepted.text

    (run,) = await finished_push(session_factory, org.id)
    assert run.counts["alreadyMember"] == 1
    assert (await client.get(url(org.id, "flagged-members"), headers=headers)).json()["items"] == []
    assert emu.group_members(tenant.group_id) == [users[1]["id"]]


async def test_changes_within_a_second_go_in_one_run_and_nothing_is_pushed_with_autosync_off(
    emu: Any, session_factory: Any
) -> None:
    users = [directory_user(i) for i in range(4)]
    tenant = load_tenant(emu, users)
    org, _, _ = await make_team(session_factory, [], group_id=tenant.group_id, auto_sync=True)
    other, _, _ = await make_team(session_factory, [], group_id=str(uuid.uuid4()), auto_sync=False)
    _, _, people = await make_team(session_factory, [u["mail"] for u in users[:3]], group_id=None)

    # Two members added one after the other (two transactions), and one to the organization without autoSync.
    for organization, person in ((org, people[0]), (org, people[1]), (other, people[2])):
        async with session_factory() as session:
            session.add(Membership(organization_id=organization.id, user_id=person.id, role=Role.MEMBER))
            await session.commit()

    runs = await finished_push(session_factory, org.id)
    await asyncio.sleep(1.5)  # past the window: no second run, none for the organization without autoSync
    assert len(await push_runs(session_factory, org.id)) == 1
    assert len(runs[0].targets or []) == 2 and runs[0].counts["added"] == 2
    assert set(emu.group_members(tenant.group_id)) == {users[0]["id"], users[1]["id"]}
    assert await push_runs(session_factory, other.id) == []


async def test_a_member_removed_leaves_the_group_with_remove_departed_on(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users, owners=[users[2]["id"]])
    org, admin, members = await make_team(
        session_factory,
        [u["mail"] for u in users],
        group_id=tenant.group_id,
        auto_sync=True,
        remove_departed=True,
    )
    headers = await bearer(admin)
    first = await client.post(url(org.id, "sync-members?wait=30"), json={}, headers=headers)
    assert first.json()["counts"]["added"] == 3
    emu.replicate_now()
    emu.reset_stats()

    for member in members[1:]:  # person1, and person2 who owns the group: owners are never removed
        removed = await client.delete(f"/api/v1/organizations/{org.id}/members/{member.id}", headers=headers)
        assert removed.status_code == 204
    await until(lambda: users[1]["id"] not in emu.group_members(tenant.group_id))

    runs = await finished_push(session_factory, org.id)
    assert sum(r.counts.get("removed", 0) for r in runs) == 1
    assert set(emu.group_members(tenant.group_id)) == {users[0]["id"], users[2]["id"]}
    assert emu.stats()["graph_requests"] <= 2 * len(runs), emu.stats()


async def test_a_member_removed_with_remove_departed_off_starts_nothing(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(2)]
    tenant = load_tenant(emu, users, members=[users[0]["id"]])
    org, admin, members = await make_team(
        session_factory, [users[0]["mail"]], group_id=tenant.group_id, auto_sync=True
    )
    removed = await client.delete(
        f"/api/v1/organizations/{org.id}/members/{members[0].id}", headers=await bearer(admin)
    )
    assert removed.status_code == 204
    await asyncio.sleep(2.0)
    assert await push_runs(session_factory, org.id) == []
    assert emu.group_members(tenant.group_id) == [users[0]["id"]]


async def test_a_reactivated_member_and_a_changed_address_are_pushed(emu: Any, session_factory: Any) -> None:
    users = [directory_user(i) for i in range(3)]
    tenant = load_tenant(emu, users)
    org, _, (returning, renamed) = await make_team(
        session_factory, [users[0]["mail"], users[1]["mail"]], group_id=tenant.group_id, auto_sync=True
    )
    async with session_factory() as session:
        row = await session.get(User, returning.id)
        row.is_active = False
        await session.commit()
    await asyncio.sleep(1.5)
    assert (
        await push_runs(session_factory, org.id) == []
    )  # a deactivation changes nothing without removeDeparted
    emu.reset_stats()

    async with session_factory() as session:
        (await session.get(User, returning.id)).is_active = True
        renamed_row = await session.get(User, renamed.id)
        renamed_row.email = users[2]["mail"]
        renamed_row.email_normalized = normalize_email(users[2]["mail"])
        await session.commit()

    await until(lambda: len(emu.group_members(tenant.group_id)) == 2)
    (run,) = await finished_push(session_factory, org.id)
    assert run.counts["added"] == 2
    assert set(emu.group_members(tenant.group_id)) == {users[0]["id"], users[2]["id"]}
    assert emu.stats()["graph_requests"] <= 2, emu.stats()


async def test_a_change_while_a_run_is_active_follows_it(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(4)]
    tenant = load_tenant(emu, users)
    org, admin, _ = await make_team(
        session_factory, [u["mail"] for u in users[:2]], group_id=tenant.group_id, auto_sync=True
    )
    headers = await bearer(admin)
    emu.set_faults(latency_ms=1000)  # the manual sync takes a few seconds
    started = await client.post(url(org.id, "sync-members"), json={}, headers=headers)
    assert started.status_code == 202
    manual_id = uuid.UUID(started.json()["id"])

    async def running() -> bool:
        async with session_factory() as session:
            run = await session.get(SyncRun, manual_id, populate_existing=True)
            return run is not None and run.status == RunStatus.RUNNING.value

    await until(running)
    await asyncio.sleep(0.3)  # it has read the team
    await join(client, org.id, headers, users[3]["mail"])
    assert await running(), "the change was meant to come while the manual sync runs"

    manual = await wait_for_run(session_factory, manual_id, 30)
    assert manual is not None and manual.counts["added"] == 2
    (follow_up,) = await finished_push(session_factory, org.id)
    assert follow_up.created_at >= manual.finished_at
    assert follow_up.counts["added"] == 1
    assert set(emu.group_members(tenant.group_id)) == {users[0]["id"], users[1]["id"], users[3]["id"]}


@pytest.mark.postgres
@pytest.mark.redis
async def test_with_the_redis_broker_an_equa_worker_runs_the_push(
    emulator_settings: Any, database_url: str, clean_database: str, emu: Any, tmp_path: Path
) -> None:
    redis_url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("needs EQUA_TEST_REDIS_URL")
    if not database_url.startswith("postgresql"):
        pytest.skip("the scaled-out shape runs on PostgreSQL")
    assert redis_url.rstrip("/").endswith("/15"), "the tests use Redis database 15 only"
    settings = emulator_settings("sync", broker_url=redis_url)
    users = [directory_user(i) for i in range(2)]
    tenant = load_tenant(emu, users)
    worker = start_worker(settings, tmp_path)
    try:
        application = create_app(settings)
        async with LifespanManager(application):
            session_factory = application.state.session_factory
            org, admin, _ = await make_team(session_factory, [], group_id=tenant.group_id, auto_sync=True)
            async with session_factory() as session:
                _, token = await create_api_token(session, admin, "push")
                await session.commit()
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                await join(client, org.id, {"Authorization": f"Bearer {token}"}, users[1]["mail"])
                await until(lambda: users[1]["id"] in emu.group_members(tenant.group_id), 30)
            (run,) = await finished_push(session_factory, org.id)
            assert run.status == RunStatus.SUCCEEDED.value and run.counts["added"] == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        import redis

        client = redis.Redis.from_url(redis_url)
        client.delete(QUEUE_NAME)
        client.close()


def start_worker(settings: Any, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EQUA_DATABASE_URL": settings.database_url,
        "EQUA_BROKER_URL": settings.broker_url,
        "EQUA_LOG_LEVEL": "INFO",
        "EQUA_DATA_DIR": str(tmp_path / "worker"),
        "EQUA_SECRET_KEY": settings.secret_key.get_secret_value(),
        "MS_AUTH_ENABLED": "true",
        "MS_AUTH_CLIENT_ID": settings.ms_auth_client_id,
        "MS_AUTH_TENANT_ID": settings.ms_auth_tenant_id,
        "MS_AUTH_SECRET": settings.ms_auth_secret.get_secret_value(),
        "MS_AUTHORITY_HOST": settings.ms_authority_host,
        "MS_GRAPH_URL": settings.ms_graph_url,
        "MS_CA_BUNDLE": str(settings.ms_ca_bundle),
        "MS_GROUP_SCOPE": settings.ms_group_scope,
    }
    equa = Path(sys.executable).with_name("equa")
    log = (tmp_path / "worker.log").open("wb")
    return subprocess.Popen([str(equa), "worker"], env=env, stdout=log, stderr=log)


async def test_a_member_an_admin_removed_from_the_group_is_not_pushed_back(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    users = [directory_user(i) for i in range(2)]
    tenant = load_tenant(emu, users)
    org, admin, (kept_out,) = await make_team(
        session_factory, [users[0]["mail"]], group_id=tenant.group_id, auto_sync=True
    )
    emu.add_members(tenant.group_id, [users[0]["id"]])
    headers = await bearer(admin)
    removed = await client.delete(url(org.id, f"group/members/{users[0]['id']}"), headers=headers)
    assert removed.status_code == 204, removed.text

    # Re-activating the person is a team change a push carries; the admin's removal must still win.
    async with session_factory() as session:
        (await session.get(User, kept_out.id)).is_active = False
        await session.commit()
    async with session_factory() as session:
        (await session.get(User, kept_out.id)).is_active = True
        await session.commit()
    (run,) = await finished_push(session_factory, org.id)
    assert run.counts.get("added", 0) == 0
    assert emu.group_members(tenant.group_id) == []
