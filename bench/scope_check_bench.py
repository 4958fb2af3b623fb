"""Scope check bench: what MS_GROUP_SCOPE=administrative-unit:<id> costs each Graph operation on a linked group.

    .venv/bin/python bench/scope_check_bench.py [--unit-groups 10,1000,5000] [--checks 20] [--latency-ms 50]

Every Graph call on a linked group (details, a members page, an add, a remove, the start of a sync) first asks
whether the organization may still reach the group. In the administrative-unit scope that means asking Graph whether
the unit holds the group. The emulator (answering every Graph request after --latency-ms) holds one unit of
--unit-groups groups; the bench checks a group of the unit and one outside it, --checks times each, and prints the
Graph requests and the time of one check. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

UNIT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "scope-check-bench/unit"))
SECONDS_PER_CHECK = 0.003  # measured: one check's own cost on the emulator, beside --latency-ms


def seed_with_unit(group_count: int) -> dict[str, Any]:
    """The default seed plus one administrative unit holding `group_count` new groups."""
    from graph_emulator import seeds

    seed = seeds.default_seed()
    tenant = seed["tenants"][0]
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"scope-check-bench/group/{n}")) for n in range(group_count)]
    for number, group_id in enumerate(ids):
        tenant["groups"].append(
            {
                "id": group_id,
                "displayName": f"Bench group {number}",
                "mailNickname": f"bench-group-{number}",
                "groupTypes": ["Unified"],
                "mailEnabled": True,
                "securityEnabled": False,
                "visibility": "Private",
            }
        )
    tenant["administrativeUnits"].append({"id": UNIT_ID, "displayName": "Bench unit", "members": ids})
    return seed


async def measure(group_count: int, checks: int, latency_ms: float) -> tuple[float, float, float, float]:
    """(requests per check, ms per check) for a group of the unit (the last one listed) and one outside it."""
    from equa.microsoft.graph import build_graph_client
    from equa.microsoft.scope import GroupScope
    from equa.settings import GroupScopeMode, load_settings
    from graph_emulator.testing import start_emulator

    with tempfile.TemporaryDirectory() as tmp:
        emu = start_emulator(Path(tmp), seed=seed_with_unit(group_count), throttling=False, lag_seconds=0)
        try:
            emu.set_faults(latency_ms=latency_ms)
            settings = load_settings(
                ms_auth_enabled=True,
                ms_auth_client_id=emu.client_id,
                ms_auth_tenant_id=emu.tenant_id,
                ms_auth_secret=emu.client_secret,
                ms_authority_host=emu.base_url,
                ms_graph_url=emu.graph_url,
                ms_ca_bundle=emu.ca_path,
                ms_group_scope=f"administrative-unit:{UNIT_ID}",
            )
            scope = GroupScope(GroupScopeMode.ADMINISTRATIVE_UNIT, UNIT_ID)
            inside = str(uuid.uuid5(uuid.NAMESPACE_URL, f"scope-check-bench/group/{group_count - 1}"))
            outside = str(uuid.uuid4())
            results: list[float] = []
            async with build_graph_client(settings) as graph:
                await graph.get("groups", params={"$top": "1"})  # the token and connection, before measuring
                for group_id, expected in ((inside, True), (outside, False)):
                    before = emu.stats()["graph_requests"]
                    times: list[float] = []
                    for _ in range(checks):
                        started = time.perf_counter()
                        held = await scope.unit_holds(graph, group_id)
                        times.append(time.perf_counter() - started)
                        assert held is expected, (group_id, held)
                    requests = (emu.stats()["graph_requests"] - before) / checks
                    results += [requests, statistics.median(times) * 1000]
            return results[0], results[1], results[2], results[3]
        finally:
            emu.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit-groups", default="10,1000,5000", help="comma-separated unit sizes")
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.epilog = (
        "Expected duration: about 10 s with the defaults (an emulator per unit size, and each check waits "
        "--latency-ms for its one Graph request)."
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.unit_groups.split(",") if size.strip()]
    seconds = 1 + len(sizes) * (1 + 2 * args.checks * (args.latency_ms / 1000 + SECONDS_PER_CHECK))
    print(f"Expected duration: about {seconds:.0f} s.", flush=True)
    print(
        f"One scope check in the administrative-unit scope, emulator at {args.latency_ms:g} ms per request:"
    )
    print(f"{'unit groups':>12} {'in unit: requests':>18} {'ms':>8} {'outside: requests':>18} {'ms':>8}")
    for size in sizes:
        in_requests, in_ms, out_requests, out_ms = asyncio.run(measure(size, args.checks, args.latency_ms))
        print(f"{size:>12} {in_requests:>18.1f} {in_ms:>8.1f} {out_requests:>18.1f} {out_ms:>8.1f}")


if __name__ == "__main__":
    main()
