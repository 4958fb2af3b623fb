"""The command line's --seed file, and time_scale speeding up throttling refill and replication lag."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from emulator_helpers import Graph, error_of, fetch_token, http_client

from graph_emulator import seeds
from graph_emulator.testing import EmulatorControl, start_emulator

# ---- a small seed of our own, in the shape seeds.py produces ------------------------------------------

TENANT_ID = "0b6c7d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"
DOMAIN = "fabrikam-test.onmicrosoft.com"
CLIENT_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
CLIENT_SECRET = "seeded~app-secret-for-the-cli-test"

ALICE = seeds.stable_id(DOMAIN, "user", "alice")
BOB = seeds.stable_id(DOMAIN, "user", "bob")
CAROL = seeds.stable_id(DOMAIN, "user", "carol")
GUEST = seeds.stable_id(DOMAIN, "user", "guest")
DESIGN = seeds.stable_id(DOMAIN, "group", "design")
AUDIT = seeds.stable_id(DOMAIN, "group", "audit")
EMPTY = seeds.stable_id(DOMAIN, "group", "empty")


def user(object_id: str, alias: str, name: str, **extra: Any) -> dict[str, Any]:
    mail = f"{alias}@{DOMAIN}"
    return {
        "id": object_id,
        "displayName": name,
        "userPrincipalName": mail,
        "mail": mail,
        "userType": "Member",
        **extra,
    }


def small_seed() -> dict[str, Any]:
    guest_mail = "dana@partner.example"
    return {
        "tenants": [
            {
                "id": TENANT_ID,
                "domain": DOMAIN,
                "displayName": "Fabrikam (test)",
                "size": "S",
                "apps": [
                    {
                        "clientId": CLIENT_ID,
                        "displayName": "Seeded sync app",
                        "secrets": [{"value": CLIENT_SECRET, "expires": "2099-12-31T00:00:00Z"}],
                        "roles": list(seeds.APP_ROLES),
                        "requestedRoles": list(seeds.APP_ROLES),
                    }
                ],
                "users": [
                    user(ALICE, "alice", "Alice Archer", department="Design"),
                    user(BOB, "bob", "Bob Baker", department="Finance"),
                    user(CAROL, "carol", "Carol Chen", department="Design"),
                    {
                        "id": GUEST,
                        "displayName": "Dana (partner)",
                        "userPrincipalName": f"dana_partner.example#EXT#@{DOMAIN}",
                        "mail": guest_mail,
                        "userType": "Guest",
                    },
                ],
                "groups": [
                    {
                        "id": DESIGN,
                        "displayName": "Design",
                        "description": "Design team",
                        "groupTypes": ["Unified"],
                        "mailEnabled": True,
                        "securityEnabled": False,
                        "mailNickname": "design",
                        "visibility": "Private",
                        "members": [ALICE, CAROL, GUEST],
                        "owners": [ALICE],
                    },
                    {
                        "id": AUDIT,
                        "displayName": "Audit",
                        "description": "Security group for auditors",
                        "groupTypes": [],
                        "mailEnabled": False,
                        "securityEnabled": True,
                        "mailNickname": "audit",
                        "members": [BOB],
                        "owners": [],
                    },
                    {
                        "id": EMPTY,
                        "displayName": "Nobody Yet",
                        "groupTypes": ["Unified"],
                        "mailEnabled": True,
                        "securityEnabled": False,
                        "mailNickname": "nobody-yet",
                        "members": [],
                        "owners": [BOB],
                    },
                ],
            }
        ]
    }


# ---- the emulator as a child process -----------------------------------------------------------------


@dataclass
class EmulatorChild:
    """`python -m graph_emulator` in its own process, with the attributes Graph and fetch_token read."""

    process: subprocess.Popen[str]
    base_url: str
    ca_path: Path
    tenant_id: str
    client_id: str
    client_secret: str

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"


def emulator_command(data_dir: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "graph_emulator", "--port", "0", "--data-dir", str(data_dir), *options]


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def first_stdout_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline().strip() if ready else ""


def ca_path_from_stderr(stderr_file: Path, timeout: float) -> Path:
    """The path the emulator names on its `CA certificate: ...` stderr line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in stderr_file.read_text().splitlines():
            if line.startswith("CA certificate: "):
                return Path(line.removeprefix("CA certificate: "))
        time.sleep(0.02)
    raise AssertionError(f"no CA certificate line on stderr: {stderr_file.read_text()!r}")


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Any]:
    """Start emulator child processes; each one is terminated and waited for when the test ends."""
    children: list[subprocess.Popen[str]] = []

    def start(*options: str, tenant_id: str, client_id: str, client_secret: str) -> EmulatorChild:
        run_dir = tmp_path / f"emulator-{len(children)}"
        run_dir.mkdir()
        stderr_file = run_dir / "stderr.txt"
        with stderr_file.open("w") as stderr:
            process = subprocess.Popen(
                emulator_command(run_dir / "data", *options), stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        children.append(process)
        base_url = first_stdout_line(process, timeout=30)
        assert base_url.startswith("https://127.0.0.1:"), (base_url, stderr_file.read_text())
        ca_path = ca_path_from_stderr(stderr_file, timeout=10)
        assert ca_path.is_file() and ca_path.parent == run_dir / "data"
        control = EmulatorControl(base_url, ca_path)
        try:
            assert control.health() == {"status": "ok"}
        finally:
            control.close()
        return EmulatorChild(process, base_url, ca_path, tenant_id, client_id, client_secret)

    yield start
    for process in children:
        stop(process)


# ---- --seed FILE ---------------------------------------------------------------------------------------


def ids_of(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["value"]}


def test_seed_file_is_the_directory_graph_serves(launch, tmp_path):
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(small_seed(), indent=2))
    child = launch(
        "--seed", str(seed_file), tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    # The seeded app gets an app-only token from the seeded tenant, over HTTPS checked against the CA.
    graph = Graph(child, fetch_token(child))
    try:
        assert ids_of(graph.get("/users", params={"$top": "999"})) == {ALICE, BOB, CAROL, GUEST}
        assert ids_of(graph.get("/groups", params={"$top": "999"})) == {DESIGN, AUDIT, EMPTY}
        assert ids_of(graph.get(f"/groups/{DESIGN}/members")) == {ALICE, CAROL, GUEST}
        assert ids_of(graph.get(f"/groups/{AUDIT}/members")) == {BOB}
        assert ids_of(graph.get(f"/groups/{EMPTY}/members")) == set()
        assert ids_of(graph.get(f"/groups/{DESIGN}/owners")) == {ALICE}
        assert ids_of(graph.get(f"/groups/{EMPTY}/owners")) == {BOB}

        design = graph.get(f"/groups/{DESIGN}").json()
        assert design["displayName"] == "Design" and design["mail"] == f"design@{DOMAIN}"
        carol = graph.get(f"/users/{CAROL}", params={"$select": "displayName,mail,userType"}).json()
        assert (carol["displayName"], carol["mail"], carol["userType"]) == ("Carol Chen", f"carol@{DOMAIN}",
                                                                           "Member")  # fmt: skip
        assert graph.get(f"/users/{GUEST}", params={"$select": "userType"}).json()["userType"] == "Guest"

        # Nothing of the built-in default tenant leaks in.
        default_seed = seeds.default_seed()["tenants"][0]
        default_user = default_seed["users"][0]["id"]
        default_group = default_seed["groups"][0]["id"]
        missing_user = graph.get(f"/users/{default_user}")
        assert missing_user.status_code == 404
        assert error_of(missing_user)["code"] == "Request_ResourceNotFound"
        assert graph.get(f"/groups/{default_group}").status_code == 404
        assert graph.get(f"/users/{seeds.stable_id(DOMAIN, 'user', 'mallory')}").status_code == 404
    finally:
        graph.http.close()

    with http_client(child) as http:
        form = {"scope": "https://graph.microsoft.com/.default", "grant_type": "client_credentials"}
        default_app = http.post(
            child.token_url,
            data={**form, "client_id": seeds.DEFAULT_CLIENT_ID, "client_secret": seeds.DEFAULT_CLIENT_SECRET},
        )
        assert default_app.status_code == 400
        assert default_app.json()["error"] == "unauthorized_client"
        default_tenant = http.post(
            f"{child.base_url}/{seeds.DEFAULT_TENANT_ID}/oauth2/v2.0/token",
            data={**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        assert default_tenant.status_code == 400
        assert "AADSTS90002" in default_tenant.json()["error_description"]


def truncated_json(path: Path) -> None:
    path.write_text(json.dumps(small_seed())[:200])


def a_json_list(path: Path) -> None:
    path.write_text(json.dumps(small_seed()["tenants"]))


def a_secret_without_value(path: Path) -> None:
    seed = small_seed()
    seed["tenants"][0]["apps"][0]["secrets"] = [{"expires": "2099-12-31T00:00:00Z"}]
    path.write_text(json.dumps(seed))


def no_file(path: Path) -> None:
    pass


@pytest.mark.parametrize(
    ("write_seed", "reason"),
    [
        (truncated_json, "is not valid JSON"),
        (a_json_list, 'must hold a JSON object with a "tenants" list'),
        (a_secret_without_value, "is not a valid seed: missing 'value'"),
        (no_file, "cannot read seed file"),
    ],
    ids=["truncated-json", "json-list", "secret-without-value", "missing-file"],
)
def test_bad_seed_file_exits_2_with_one_line(tmp_path, write_seed, reason):
    seed_file = tmp_path / "seed.json"
    write_seed(seed_file)
    result = subprocess.run(
        emulator_command(tmp_path / "data", "--seed", str(seed_file)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # no base URL: nothing is served
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("graph_emulator: error: ")
    assert reason in lines[0] and str(seed_file) in lines[0]
    assert "Traceback" not in result.stderr


# ---- time_scale -----------------------------------------------------------------------------------------

MEMBERS_OF = seeds.stable_id(seeds.DEFAULT_TENANT_DOMAIN, "seed-group", "marketing")
# 20 member listings with $expand: 4 resource units each, 80 per $batch (a small tenant has 3,500 per 10 s).
COSTLY_BATCH = {
    "requests": [
        {"id": str(i), "method": "GET", "url": f"/groups/{MEMBERS_OF}/members?$expand=memberOf"}
        for i in range(20)
    ]
}
UNITS_PER_ITEM = 4
REFILL_PER_SECOND = 350  # 3,500 resource units per 10 s at time_scale 1


def batch_statuses(graph: Graph) -> list[int]:
    response = graph.post("/$batch", json=COSTLY_BATCH)
    assert response.status_code == 200, response.text
    return [item["status"] for item in response.json()["responses"]]


def exhaust_tenant_budget(graph: Graph) -> dict[str, str]:
    """Spend the tenant's resource units until an item is throttled; its headers."""
    for _ in range(400):
        response = graph.post("/$batch", json=COSTLY_BATCH)
        throttled = [item for item in response.json()["responses"] if item["status"] == 429]
        if throttled:
            return dict(throttled[0]["headers"])
    raise AssertionError("the tenant's resource-unit budget never ran out")


def seconds_until_accepted(graph: Graph, items: int) -> float:
    """From now, how long a client asking without pause waits until `items` more requests get through."""
    started = time.monotonic()
    accepted = 0
    while accepted < items:
        statuses = batch_statuses(graph)
        assert set(statuses) <= {200, 429}, statuses
        accepted += statuses.count(200)
        assert time.monotonic() - started < 15, "throttling never eased"
    return time.monotonic() - started


def test_time_scale_shortens_the_wait_after_throttling(tmp_path):
    scale = 4.0
    wanted = 100  # 400 resource units: about 1.1 s of refill at time_scale 1
    waits: dict[float, float] = {}
    for time_scale in (1.0, scale):
        with start_emulator(tmp_path / f"scale-{time_scale}", time_scale=time_scale) as emu:
            graph = Graph(emu, fetch_token(emu))
            try:
                headers = exhaust_tenant_budget(graph)
                assert headers["x-ms-throttle-scope"] == (
                    f"Tenant_Application/ReadWrite/{emu.client_id}/{emu.tenant_id}"
                )
                # Retry-After is in whole seconds and at least 1, whatever the scale.
                assert int(headers["Retry-After"]) >= 1
                waits[time_scale] = seconds_until_accepted(graph, wanted)
            finally:
                graph.http.close()
    # At time_scale 1 the bucket cannot give back 400 units faster than its documented refill rate.
    floor = (wanted - 1) * UNITS_PER_ITEM / REFILL_PER_SECOND
    assert waits[1.0] >= 0.9 * floor, waits
    ratio = waits[1.0] / waits[scale]
    assert scale / 2 <= ratio <= scale * 1.5, waits


def test_time_scale_shortens_replication_lag(launch):
    lag, scale = 8.0, 8.0  # one second of lag in real time
    child = launch(
        "--time-scale",
        str(scale),
        "--faults",
        json.dumps({"replication_lag_seconds": lag}),
        tenant_id=seeds.DEFAULT_TENANT_ID,
        client_id=seeds.DEFAULT_CLIENT_ID,
        client_secret=seeds.DEFAULT_CLIENT_SECRET,
    )
    newcomer = seeds.default_seed()["tenants"][0]["users"][0]["id"]
    reference = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{newcomer}"}
    graph = Graph(child, fetch_token(child))
    try:
        started = time.monotonic()
        created = graph.post("/groups", json={"displayName": "Just Made", "mailEnabled": True, "mailNickname":
                                              "just-made", "securityEnabled": False, "groupTypes": ["Unified"]})  # fmt: skip
        assert created.status_code == 201, created.text
        group_id = created.json()["id"]
        # While it replicates, the new group is not found and links to it are refused.
        assert graph.get(f"/groups/{group_id}").status_code == 404
        refused = graph.post(f"/groups/{group_id}/members/$ref", json=reference)
        assert refused.status_code == 400
        assert error_of(refused)["message"] == (
            "The source resource object or one of the objects being referenced don't exist."
        )
        while graph.get(f"/groups/{group_id}").status_code == 404:
            assert time.monotonic() - started < lag / 2, "the lag was not shortened by the time scale"
            time.sleep(0.02)
        visible_after = time.monotonic() - started
        assert graph.post(f"/groups/{group_id}/members/$ref", json=reference).status_code == 204
        added = time.monotonic()
        # The new member replicates with the same (scaled) lag before lists show it.
        while ids_of(graph.get(f"/groups/{group_id}/members")) != {newcomer}:
            assert time.monotonic() - added < lag / 2, "the member list did not catch up"
            time.sleep(0.02)
    finally:
        graph.http.close()
    assert lag / scale <= visible_after <= lag / scale + 1.5, visible_after


# ---- --multi-tenant ------------------------------------------------------------------------------------


def test_multi_tenant_demo_prints_each_administrator_and_checks_the_redirect_uri(launch, tmp_path):
    callback = "https://equa.example/microsoft/consent-callback"
    child = launch(
        "--multi-tenant",
        "--redirect-uri",
        callback,
        tenant_id=seeds.DEFAULT_TENANT_ID,
        client_id=seeds.DEFAULT_CLIENT_ID,
        client_secret=seeds.DEFAULT_CLIENT_SECRET,
    )
    stderr = (tmp_path / "emulator-0" / "stderr.txt").read_text()
    for tenant_id, (admin, password) in seeds.DEMO_ADMINS.items():
        assert f"({tenant_id}): administrator {admin} password {password}" in stderr
    assert fetch_token(child)  # Contoso consented
    control = EmulatorControl(child.base_url, child.ca_path)
    try:
        fabrikam = next(t for t in control.tenants() if t["id"] == seeds.FABRIKAM_TENANT_ID)
        assert not next(a for a in fabrikam["apps"] if a["clientId"] == seeds.DEFAULT_CLIENT_ID)["consented"]
    finally:
        control.close()
    with http_client(child) as http:
        query = {"client_id": seeds.DEFAULT_CLIENT_ID, "scope": "https://graph.microsoft.com/.default"}
        url = f"{child.base_url}/organizations/v2.0/adminconsent"
        assert http.get(url, params={**query, "redirect_uri": callback}).status_code == 200
        other = http.get(url, params={**query, "redirect_uri": "https://elsewhere.example/cb"})
        assert other.status_code == 400 and "AADSTS50011" in other.text


def test_fleet_option_serves_a_generated_fleet(launch):
    child = launch(
        "--fleet",
        "3,12,300",
        tenant_id="",
        client_id=seeds.DEFAULT_CLIENT_ID,
        client_secret=seeds.DEFAULT_CLIENT_SECRET,
    )
    control = EmulatorControl(child.base_url, child.ca_path)
    try:
        layout = control.fleet()
    finally:
        control.close()
    assert len(layout["tenants"]) == 3 and layout["memberships"] == 300
    assert sum(len(tenant["groups"]) for tenant in layout["tenants"]) == 12
