"""How long the emulator takes to build a fleet, and what a delta round over 50 groups costs it.

    .venv/bin/python bench/emulator_fleet_bench.py [--tenants 100 --groups 2000 --memberships 400000] [--rounds 2000]

Builds the fleet in this process (tenants of sizes S/M/L, groups of 5-2,000 members). Then, on a second fleet of 4
tenants and 400 groups (a tenant with over 50 linked groups), times delta rounds over 50 groups called straight on
the emulator (no HTTP): the first round, rounds with no change, the same after 20,000 membership changes elsewhere
in the tenant, and a round after two changes. Prints numbers only; it never asserts timings.
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid
from typing import Any

import graph_emulator.app  # noqa: F401 - registers the Graph routes
from graph_emulator.fleet import fleet_seed
from graph_emulator.router import GraphRequest, GraphResponse
from graph_emulator.runtime import Emulator
from graph_emulator.seeds import DEFAULT_CLIENT_ID
from graph_emulator.state import Tenant


def delta(emu: Emulator, tenant: Tenant, query: dict[str, str]) -> GraphResponse:
    app = tenant.apps[DEFAULT_CLIENT_ID]
    request = GraphRequest(
        method="GET",
        path="/groups/delta",
        query=query,
        headers={},
        body=None,
        tenant=tenant,
        app=app,
        roles=frozenset(app.roles),
        request_id=str(uuid.uuid4()),
        client_request_id=None,
        graph_base="https://127.0.0.1/v1.0",
    )
    response = emu.execute(request)
    assert response.status == 200, response.body
    return response


def whole_round(emu: Emulator, tenant: Tenant, query: dict[str, str]) -> tuple[int, str]:
    """Entries of a round and its deltaLink's token, following nextLinks."""
    entries = 0
    while True:
        body: dict[str, Any] = delta(emu, tenant, query).body
        entries += len(body["value"])
        if "@odata.deltaLink" in body:
            return entries, body["@odata.deltaLink"].split("$deltatoken=", 1)[1]
        query = {"$skiptoken": body["@odata.nextLink"].split("$skiptoken=", 1)[1]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Expected duration: about 10 s at the full size (building takes 2-4 s), less for a smaller fleet.",
    )
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--memberships", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=2000, help="unchanged rounds timed")
    args = parser.parse_args()
    print("Expected duration: about 10 s at the full size.", flush=True)

    started = time.perf_counter()
    emu = Emulator(fleet_seed(args.tenants, args.groups, args.memberships), throttling=False, lag_seconds=0)
    built = time.perf_counter() - started
    layout = emu.directory.fleet
    assert layout is not None
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'fleet built (tenants, groups, memberships)':<55} {built:8.2f} s  "
          f"({args.tenants}, {args.groups}, {layout['memberships']}); peak RSS {peak_mb:.0f} MB")  # fmt: skip

    emu = Emulator(fleet_seed(4, 400, 80_000), throttling=False, lag_seconds=0)
    layout = emu.directory.fleet
    assert layout is not None
    home = max(layout["tenants"], key=lambda t: len(t["groups"]))
    tenant = emu.directory.tenants[home["id"]]
    picked = [g["id"] for g in home["groups"][:50]]
    query = {"$select": "members", "$filter": " or ".join(f"id eq '{g}'" for g in picked)}
    started = time.perf_counter()
    entries, token = whole_round(emu, tenant, query)
    members = sum(g["members"] for g in home["groups"][:50])
    print(f"{'first round, 50 groups (' + str(members) + ' members)':<55} "
          f"{(time.perf_counter() - started) * 1000:8.1f} ms  ({entries} entries)")  # fmt: skip

    def unchanged(label: str) -> None:
        started = time.perf_counter()
        for _ in range(args.rounds):
            body = delta(emu, tenant, {"$deltatoken": token}).body
            assert body["value"] == []
        per_round = (time.perf_counter() - started) / args.rounds * 1e6
        print(f"{label:<55} {per_round:8.0f} µs a round (CPU, no HTTP)")

    unchanged("round with no change, 50 groups")
    others = [g["id"] for g in home["groups"][50:]]
    users = list(tenant.users)
    for index in range(20_000):  # history elsewhere in the tenant: adds and removes in other groups
        group = others[index % len(others)]
        user = users[index % len(users)]
        if user in tenant.members[group]:
            tenant.remove_member(group, user)
        else:
            tenant.add_member(group, user)
    unchanged("round with no change, after 20,000 changes elsewhere")
    tenant.add_member(picked[0], next(u for u in users if u not in tenant.members[picked[0]]))
    tenant.remove_member(picked[1], tenant.members[picked[1]].ordered()[0])
    started = time.perf_counter()
    entries, _ = whole_round(emu, tenant, {"$deltatoken": token})
    print(f"{'round after 2 changes in the 50 groups':<55} "
          f"{(time.perf_counter() - started) * 1e6:8.0f} µs  ({entries} entries)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
