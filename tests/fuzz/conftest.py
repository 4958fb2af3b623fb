"""Fixtures of the API fuzz run: the emulator, a seeded SQLite installation, `equa serve`, and the admin's token.

Besides the served app, the set-up collects the ids of things that exist (`RealIds`): the seeded organization with
its linked group and team, two more organizations of the admin with no group, finished sync runs, flagged group
members, the group's directory members and spare API tokens. The fuzz test draws path parameters and some request
bodies from them, so most requests get past the 404 of an unknown id and reach the business rules and Microsoft
Graph.

The count of responses by status code is printed in the terminal summary at the end of the run (with -v, also
per operation).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from equa.microsoft.sync.runs import FINISHED_STATUSES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))

from service_harness import (
    SeededOrganization,
    ServedApp,
    seed_group_id,
    seed_organization_sync,
    service_environment,
    tenant_member_emails,
)


@dataclass(frozen=True)
class RealIds:
    """Ids (as strings) of rows and directory objects that exist when the fuzzing starts."""

    organization_id: str  # the seeded organization: group linked, synced, the admin is its only admin
    spare_organization_id: str  # the admin's second organization: no group linked
    solo_organization_id: str  # the admin's third organization, where the admin's own membership is fuzzed
    admin_id: str
    team_user_ids: tuple[str, ...]  # members of the seeded organization other than the admin
    solo_user_ids: tuple[str, ...]  # members of the solo organization, the admin included
    run_ids: tuple[str, ...]  # finished sync runs of the seeded organization (a dry run and a real one)
    flag_ids: tuple[str, ...]  # flagged members of the seeded organization
    group_member_ids: tuple[str, ...]  # directory ids of the linked group's members
    tenant_user_ids: tuple[str, ...]  # directory ids of the tenant's users, in the group or not
    tenant_emails: tuple[str, ...]
    group_ids: tuple[str, ...]  # the tenant's groups, the linked one first
    token_ids: tuple[str, ...]  # the admin's spare API tokens (never the one the requests use)

    def all(self) -> frozenset[str]:
        """Every id above, to tell a request that used only real ids from one with a generated id."""
        values = {self.organization_id, self.spare_organization_id, self.solo_organization_id, self.admin_id}
        for pool in (
            self.team_user_ids,
            self.solo_user_ids,
            self.run_ids,
            self.flag_ids,
            self.group_member_ids,
            self.tenant_user_ids,
            self.group_ids,
            self.token_ids,
        ):
            values.update(pool)
        return frozenset(values)


@dataclass(frozen=True)
class FuzzTarget:
    base_url: str
    seeded: SeededOrganization
    app: ServedApp
    ids: RealIds


@dataclass
class StatusTally:
    """Responses by status code: per operation, and by whether the request's path used real ids."""

    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    by_ids: dict[str, Counter[int]] = field(default_factory=dict)

    def start(self, operation: str) -> None:
        self.by_operation.setdefault(operation, Counter())

    def record(self, operation: str, ids: str, status: int) -> None:
        self.by_operation.setdefault(operation, Counter())[status] += 1
        self.by_ids.setdefault(ids, Counter())[status] += 1

    def overall(self) -> Counter[int]:
        return sum(self.by_operation.values(), Counter())

    def lines(self, *, per_operation: bool = False) -> list[str]:
        overall = self.overall()
        total = sum(overall.values())
        if not total:
            return []
        lines = [
            f"{total} responses over {len(self.by_operation)} operations; "
            f"404: {overall[404]} ({overall[404] / total:.0%}); 5xx: {sum(n for s, n in overall.items() if s >= 500)}",
            f"all: {_statuses(overall)}",
        ]
        lines += [f"{kind}: {_statuses(counts)}" for kind, counts in sorted(self.by_ids.items())]
        if per_operation:
            lines += [
                f"  {operation}: {_statuses(counts)}" for operation, counts in self.by_operation.items()
            ]
        return lines


def _statuses(counts: Counter[int]) -> str:
    return ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))


_TALLY = pytest.StashKey[StatusTally]()


@pytest.fixture(scope="session")
def status_tally(request: pytest.FixtureRequest) -> StatusTally:
    tally = StatusTally()
    request.config.stash[_TALLY] = tally
    return tally


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tally = config.stash.get(_TALLY, None)
    if tally is not None and tally.lines():
        terminalreporter.section("fuzz: responses by status code")
        for line in tally.lines(per_operation=config.get_verbosity() > 0):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def fuzz_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    testing = pytest.importorskip("graph_emulator.testing", reason="the Graph emulator is not available")
    running = testing.start_emulator(tmp_path_factory.mktemp("fuzz-emulator"), throttling=False)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory, fuzz_emulator: Any) -> Iterator[FuzzTarget]:
    """The served app with an organization whose admin holds an API token and whose group is linked and synced."""
    root = tmp_path_factory.mktemp("fuzz-service")
    database_url = f"sqlite+aiosqlite:///{root / 'equa.db'}"
    team = tenant_member_emails(6)
    seeded = seed_organization_sync(database_url, admin_email=team[0], team=team)
    env = service_environment(fuzz_emulator, database_url, root / "data", EQUA_LOG_LEVEL="ERROR")
    app = ServedApp(env, root / "serve.log")
    try:
        with httpx.Client(base_url=app.base_url, headers=seeded.headers, timeout=60) as client:
            ids = _prepare(client, seeded, team, database_url)
        yield FuzzTarget(app.base_url, seeded, app, ids)
    finally:
        app.stop()


def _call(client: httpx.Client, method: str, url: str, expected: int, **kwargs: Any) -> Any:
    response = client.request(method, url, **kwargs)
    assert response.status_code == expected, f"{method} {url}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def _join(client: httpx.Client, members_url: str, email: str) -> None:
    """Invite `email` and, when the address has no account yet, accept as the newcomer would (a browser of their
    own); an address with an account is made a member with the admin's own session being no part of it."""
    invitation = _call(client, "POST", members_url, 201, json={"email": email})
    token = invitation["invitationUrl"].rsplit("/invitations/", 1)[1]
    with httpx.Client(base_url=str(client.base_url), timeout=60) as newcomer:
        answer = newcomer.post(
            f"/api/v1/invitations/{token}",
            json={"displayName": email.split("@")[0], "password": "fuzz passphrase 1"},
        )
        assert answer.status_code in (201, 409), answer.text  # 409: the address has an account already


def _add_directly(database_url: str, organization_id: str, emails: list[str]) -> None:
    import asyncio
    import uuid

    from equa.db.engine import create_engine_for, create_session_factory
    from equa.organizations.models import Organization, Role
    from equa.organizations.service import add_member

    async def add() -> None:
        engine = create_engine_for(database_url)
        try:
            async with create_session_factory(engine)() as session:
                organization = await session.get(Organization, uuid.UUID(organization_id))
                assert organization is not None
                for email in emails:
                    await add_member(session, organization, email, Role.MEMBER)
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(add())


def _prepare(client: httpx.Client, seeded: SeededOrganization, team: list[str], database_url: str) -> RealIds:
    """Link the engineering group, sync it (a dry run, then a real one), and collect the ids the fuzzing uses."""
    from graph_emulator.seeds import default_seed

    tenant = default_seed()["tenants"][0]
    org = f"/api/v1/organizations/{seeded.organization_id}"
    microsoft = f"{org}/microsoft"
    linked_group = seed_group_id("engineering")
    _call(client, "POST", f"{microsoft}/link-group", 200, json={"groupId": linked_group})
    # More team members, so the real sync has an outcome of each kind: one tenant member the group lacks (added),
    # two addresses the tenant does not know (notInTenant); the group's members off the team are flagged.
    in_group = next(g["members"] for g in tenant["groups"] if g["id"] == linked_group)
    newcomer = next(
        u["mail"] for u in tenant["users"] if u["userType"] == "Member" and u["id"] not in in_group
    )
    for email in (newcomer, "outsider.one@example.org", "outsider.two@example.org"):
        _join(client, f"{org}/members", email)

    run_ids = [_sync(client, microsoft, dry_run=True), _sync(client, microsoft, dry_run=False)]
    flags = _call(client, "GET", f"{microsoft}/flagged-members", 200, params={"limit": 100})["items"]
    members = _call(client, "GET", f"{microsoft}/group/members", 200, params={"limit": 100})["items"]
    team_members = _call(client, "GET", f"{org}/members", 200)

    spare = _call(client, "POST", "/api/v1/organizations", 201, json={"name": "Fuzz spare team"})
    solo = _call(client, "POST", "/api/v1/organizations", 201, json={"name": "Fuzz solo team"})
    # These addresses have accounts (seeded), which join through the link only once signed in: an operator adds
    # them directly instead.
    _add_directly(database_url, solo["id"], team[1:3])
    solo_members = _call(client, "GET", f"/api/v1/organizations/{solo['id']}/members", 200)

    tokens = [_call(client, "POST", "/api/v1/me/tokens", 201, json={"name": f"spare {n}"}) for n in range(4)]

    group_ids = [linked_group] + [g["id"] for g in tenant["groups"] if g["id"] != linked_group]
    admin_id = str(seeded.admin_id)
    ids = RealIds(
        organization_id=str(seeded.organization_id),
        spare_organization_id=spare["id"],
        solo_organization_id=solo["id"],
        admin_id=admin_id,
        team_user_ids=tuple(m["userId"] for m in team_members if m["userId"] != admin_id),
        solo_user_ids=tuple(m["userId"] for m in solo_members),
        run_ids=tuple(run_ids),
        flag_ids=tuple(f["id"] for f in flags),
        group_member_ids=tuple(m["id"] for m in members),
        tenant_user_ids=tuple(u["id"] for u in tenant["users"]),
        tenant_emails=tuple(u["mail"] for u in tenant["users"] if u.get("mail")),
        group_ids=tuple(group_ids),
        token_ids=tuple(t["id"] for t in tokens),
    )
    assert ids.flag_ids and ids.group_member_ids and ids.team_user_ids, ids
    return ids


def _sync(client: httpx.Client, microsoft: str, *, dry_run: bool) -> str:
    """Start a sync of the linked group and wait until it has finished; the run's id."""
    response = client.post(f"{microsoft}/sync-members", params={"wait": 30}, json={"dryRun": dry_run})
    assert response.status_code in (200, 202), response.text
    run = response.json()
    deadline = time.monotonic() + 60
    while run["status"] not in FINISHED_STATUSES:
        assert time.monotonic() < deadline, f"the sync run did not finish: {run}"
        time.sleep(0.2)
        run = _call(client, "GET", f"{microsoft}/sync-runs/{run['id']}", 200)
    assert run["status"] == "succeeded", run
    return str(run["id"])
