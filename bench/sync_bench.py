"""Member sync benchmark: Graph requests, $batch sub-requests, 429s, wall time and peak RSS of a first sync.

For each N (1,000 and 10,000; 100,000 with --large) it syncs N resolvable team members into an empty group
against the emulator (throttling on, tenant size M, 50 ms latency per request), then measures, in the same run,
the one-request-per-member strategy other integrations use (one lookup and one POST members/$ref per member).
It prints numbers and asserts nothing.

    .venv/bin/python bench/sync_bench.py [--large] [--latency-ms 50] [--naive-time-scale 10]

The sync runs in a child process so its peak RSS is its own (the emulator lives in this process). The
one-request-per-member strategy runs against a second emulator whose throttling windows pass --naive-time-scale
times faster (at Microsoft's real pace its 10,000 writes take minutes): its request and 429 counts are what
matter, and its wall time is a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

GROUP_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "sync-bench/group"))


def lower_bound(n: int, m: int) -> int:
    return max(1, math.ceil(m / 999)) + math.ceil(n / 300) + math.ceil(n / 400)


def tenant_seed(emu: Any, n: int) -> dict[str, Any]:
    from graph_emulator import seeds

    users = [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sync-bench/{i}")),
            "displayName": f"Person {i}",
            "mail": f"person{i}@{emu.tenant_domain}",
            "mailNickname": f"person{i}",
            "userPrincipalName": f"person{i}@{emu.tenant_domain}",
            "userType": "Member",
            "accountEnabled": True,
        }
        for i in range(n)
    ]
    group = {
        "id": GROUP_ID,
        "displayName": "Bench team",
        "groupTypes": ["Unified"],
        "mailEnabled": True,
        "securityEnabled": False,
        "mailNickname": "bench-team",
        "visibility": "Private",
        "members": [],
        "owners": [],
    }
    tenant = {
        "id": emu.tenant_id,
        "domain": emu.tenant_domain,
        "displayName": "Contoso",
        "size": "M",
        "apps": seeds.default_apps(),
        "users": users,
        "groups": [group],
    }
    return {"tenants": [tenant]}


def emulator_overrides(emu: Any) -> dict[str, Any]:
    return {
        "ms_auth_enabled": True,
        "ms_auth_client_id": emu.client_id,
        "ms_auth_tenant_id": emu.tenant_id,
        "ms_auth_secret": emu.client_secret,
        "ms_authority_host": emu.base_url,
        "ms_graph_url": emu.graph_url,
        "ms_ca_bundle": str(emu.ca_path),
    }


async def prepare_database(url: str, emails: list[str]) -> uuid.UUID:
    from sqlalchemy import insert

    from equa.accounts.models import User
    from equa.db.engine import create_engine_for
    from equa.db.migrate import upgrade_database_async
    from equa.db.models_registry import import_all_models
    from equa.organizations.models import Membership, Organization, Role

    import_all_models()
    await upgrade_database_async(url)
    engine = create_engine_for(url)
    org_id = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            insert(Organization), [{"id": org_id, "name": "Bench", "microsoft_group": uuid.UUID(GROUP_ID)}]
        )
        users = [
            {"id": uuid.uuid4(), "email": e, "email_normalized": e.lower(), "display_name": e.split("@")[0]}
            for e in emails
        ]
        for start in range(0, len(users), 5000):
            await connection.execute(insert(User), users[start : start + 5000])
            await connection.execute(
                insert(Membership),
                [
                    {"id": uuid.uuid4(), "organization_id": org_id, "user_id": u["id"], "role": Role.MEMBER}
                    for u in users[start : start + 5000]
                ],
            )
    await engine.dispose()
    return org_id


def peak_rss_mb() -> float:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries it over from the parent through
    fork and exec, so a child started by a parent holding a 100,000-user tenant would report the parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync_in_child(url: str, org_id: str, overrides: dict[str, Any], answer: Any) -> None:
    """Child process: one sync run, reporting status, counts, wall time and this process's peak RSS."""

    async def main() -> dict[str, Any]:
        from equa.microsoft.sync.execute import Progress
        from equa.microsoft.tasks import run_in_foreground
        from equa.settings import Settings

        settings = Settings(database_url=url, data_dir=Path(tempfile.mkdtemp()), **overrides)
        started = time.perf_counter()
        run = await run_in_foreground(settings, uuid.UUID(org_id), dry_run=False, progress=Progress())
        return {"status": run.status, "counts": run.counts, "seconds": time.perf_counter() - started}

    result = asyncio.run(main())
    result["peak_rss_mb"] = peak_rss_mb()
    answer.send(result)


async def one_request_per_member(emu: Any, emails: list[str]) -> float:
    """What existing integrations do: look each member up, then add each one with its own request."""
    from equa.microsoft.graph import GraphError, build_graph_client
    from equa.settings import Settings

    settings = Settings(
        data_dir=Path(tempfile.mkdtemp()), graph_max_retry_wait_seconds=900, **emulator_overrides(emu)
    )
    started = time.perf_counter()
    async with build_graph_client(settings) as graph:
        semaphore = asyncio.Semaphore(8)

        async def one(email: str) -> None:
            async with semaphore:
                found = await graph.get("/users", params={"$filter": f"mail eq '{email}'", "$select": "id"})
                users = (found.json() or {}).get("value", [])
                if not users:
                    return
                try:
                    await graph.post(
                        f"/groups/{GROUP_ID}/members/$ref",
                        json={"@odata.id": graph.url_for(f"directoryObjects/{users[0]['id']}")},
                    )
                except GraphError as error:
                    print(f"  one-per-member: {error.code} for {email}", file=sys.stderr)

        await asyncio.gather(*(one(e) for e in emails))
    return time.perf_counter() - started


def measure(n: int, ours: Any, naive: Any | None, latency_ms: float) -> None:
    emails = [f"person{i}@{ours.tenant_domain}" for i in range(n)]
    lb = lower_bound(n, 0)

    ours.reset(tenant_seed(ours, n))
    ours.set_faults(latency_ms=latency_ms)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        org_id = asyncio.run(prepare_database(url, emails))
        ours.reset_stats()
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=sync_in_child, args=(url, str(org_id), emulator_overrides(ours), send))
        child.start()
        result = receive.recv()
        child.join()
    stats = ours.stats()
    added = len(ours.group_members(GROUP_ID))

    naive_seconds = float("nan")
    naive_stats = {"graph_requests": 2 * n, "batch_subrequests": 0, "throttled": float("nan")}
    if naive is not None:
        naive.reset(tenant_seed(naive, n))
        naive.set_faults(latency_ms=latency_ms)
        naive.reset_stats()
        naive_seconds = asyncio.run(one_request_per_member(naive, emails))
        naive_stats = naive.stats()

    requests = stats["graph_requests"]
    print(f"\nN = {n:,} team members, empty group (M = 0), {latency_ms:g} ms latency, throttling on (size M)")
    print(f"  {'':28} {'equa':>12} {'one-per-member':>16}")
    print(f"  {'Graph HTTP requests':28} {requests:>12,} {naive_stats['graph_requests']:>16,}")
    print(
        f"  {'$batch sub-requests':28} {stats['batch_subrequests']:>12,} {naive_stats['batch_subrequests']:>16,}"
    )
    print(f"  {'429 answers':28} {stats['throttled']:>12,} {naive_stats['throttled']:>16}")
    print(f"  {'wall time (s)':28} {result['seconds']:>12.2f} {naive_seconds:>16.2f}")
    print(f"  {'peak RSS of the sync (MB)':28} {result['peak_rss_mb']:>12.0f} {'':>16}")
    print(f"  LB = {lb}, requests / LB = {requests / lb:.2f} (target <= 1.25)")
    print(f"  one-per-member / equa requests = {naive_stats['graph_requests'] / max(1, requests):.0f}x")
    print(f"  run {result['status']}, counts {result['counts']}, members now in the group: {added:,}")


def expected_duration(args: argparse.Namespace) -> str:
    """Measured on the project's machine: our syncs take seconds; one request per member dominates the run."""
    seconds = 30.0  # emulators, seeding, N = 1,000 both ways
    if args.naive_up_to >= 10_000:
        # 20,000 requests paced by throttling windows that pass --naive-time-scale times faster: 380 s at 10x.
        seconds += 380 * 10 / args.naive_time_scale
    seconds += 10  # our own sync of 10,000
    if args.large:
        seconds += 240
    minutes = seconds / 60
    return f"about {minutes:.0f} minutes" if minutes >= 2 else f"about {seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also N = 100,000")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--naive-time-scale", type=float, default=10.0)
    parser.add_argument(
        "--naive-up-to", type=int, default=10_000, help="measure one-request-per-member only up to this N"
    )
    parser.epilog = (
        "Expected duration: about 7 minutes by default, nearly all of it the one-request-per-member comparison at "
        "N = 10,000 (--naive-up-to 1000 brings the run under a minute); --large adds about 4 minutes."
    )
    args = parser.parse_args()
    print(f"Expected duration: {expected_duration(args)}.", flush=True)
    from graph_emulator.testing import start_emulator

    sizes = [1_000, 10_000] + ([100_000] if args.large else [])
    with tempfile.TemporaryDirectory() as tmp:
        ours = start_emulator(Path(tmp) / "ours", throttling=True)
        naive = start_emulator(Path(tmp) / "naive", throttling=True, time_scale=args.naive_time_scale)
        try:
            for n in sizes:
                measure(n, ours, naive if n <= args.naive_up_to else None, args.latency_ms)
        finally:
            ours.stop()
            naive.stop()


if __name__ == "__main__":
    main()
