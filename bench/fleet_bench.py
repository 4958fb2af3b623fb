"""Fleet bench: many tenants and organizations kept in step by the fleet cycle (delta rounds, targeted runs).

    .venv/bin/python bench/fleet_bench.py --tenants T --organizations N [--workers W] --json OUT
        [--memberships M] [--database-url postgresql+asyncpg://.../postgres --redis-url redis://.../13]
        [--throughput 1,2,4] [--latency-ms 20]

One emulator (this process, HTTPS, throttling on) holds T tenants of sizes S/M/L and N groups of 5-2,000 members
(M memberships, 200 per organization by default); Equa has one organization per group, each connected to its
tenant, with autoSync and removeDeparted on, and a team of the group's members plus 5 % not in the group yet.
Phases: the first reconcile of the whole fleet; a cycle with no changes; a cycle after 1 % of the memberships
changed by hand on the Microsoft side and 1 % on the Equa side (then every organization is checked for
convergence); fairness (every organization has a change, the busiest tenant answers 429 to everything); a cycle
with no changes after 10 % of the organizations unlinked their group and the rounds left with free places were
merged; and, with PostgreSQL and Redis, throughput of 1, 2 and 4 `equa worker` processes. Without --database-url
it runs on SQLite in one process (embedded broker). Prints a table, each figure beside its bound or goal, and
writes OUT (JSON).
It asserts nothing: tests/test_fleet_bench.py checks the small fleet's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SECONDS_PER_ORGANIZATION = 0.5
SQLITE_TENANT_CONCURRENCY = 2  # measured on the project's 2-core machine, SQLite, one process


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=(
            "Expected duration: about 2 minutes for 20 tenants and 200 organizations; about "
            f"{2000 * SECONDS_PER_ORGANIZATION / 60:.0f} minutes at the full size (100 tenants, 2,000 organizations)."
        ),
    )
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--organizations", type=int, default=2000)
    parser.add_argument("--memberships", type=int, default=None, help="default: 200 per organization")
    parser.add_argument("--workers", type=int, default=None, help="equa worker processes (needs Redis)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures")
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL server (admin URL): a database is made"
    )
    parser.add_argument("--redis-url", default=None, help="Redis for the broker (workers take runs from it)")
    parser.add_argument("--throughput", default="", help="worker counts to compare, e.g. 1,2,4 (needs Redis)")
    parser.add_argument("--throughput-sample", type=int, default=200, help="organizations synced per count")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="the emulator's answer time per request"
    )
    parser.add_argument(
        "--tenant-concurrency",
        type=int,
        default=None,
        help=f"EQUA_SYNC_TENANT_CONCURRENCY (default: the app's; {SQLITE_TENANT_CONCURRENCY} on SQLite)",
    )
    parser.add_argument(
        "--scheduler-pool",
        type=int,
        default=None,
        help="EQUA_DB_POOL_SIZE of the cycle's process (default: the app's)",
    )
    parser.add_argument(
        "--lease", type=int, default=120, help="EQUA_SYNC_LEASE: a run nobody runs is given up after this"
    )
    parser.add_argument("--run-timeout", type=float, default=900.0, help="seconds a phase's runs may take")
    return parser.parse_args(argv)


def bound_row(name: str, value: Any, goal: str, ok: bool | None = None) -> str:
    mark = "" if ok is None else ("ok" if ok else "MISSED")
    return f"  {name:<44} {value!s:>12}   {goal:<40} {mark}"


def print_table(args: argparse.Namespace, figures: dict[str, Any], notes: list[str]) -> None:
    v = figures
    print(
        f"\nFleet: {args.tenants} tenants, {args.organizations} organizations, {v['memberships']:,} memberships; "
        f"{v['mode']}; emulator {args.latency_ms:g} ms per request, throttling on"
    )
    print(f"  {'figure':<44} {'value':>12}   {'bound or goal':<40}")
    lower = v["first_lower_bound"]
    print(bound_row("first reconcile: Graph requests", v["first_requests"],
                    f"<= 1.1 x {lower} = {math.floor(1.1 * lower)}", v["first_requests"] <= 1.1 * lower))  # fmt: skip
    if v.get("first_retry_requests"):
        print(bound_row("first reconcile: retrying failed runs", v["first_retry_requests"],
                        f"requests, {v['first_unsuccessful_runs']} run(s) failed (not in the line above)"))  # fmt: skip
    print(bound_row("first reconcile: 429 answers", v["first_429"], "0", v["first_429"] == 0))
    print(bound_row("first reconcile: wall time (s)", v["first_seconds"],
                    f"write-quota bound of the slowest tenant: {v['first_write_quota_s']} s"))  # fmt: skip
    print(bound_row("first reconcile: runs", v["first_runs"], f"{args.organizations} organizations"))
    print(bound_row("idle cycle: Graph requests", v["idle_requests"],
                    f"<= {v['idle_bound']} (ceil(groups/50) per tenant)", v["idle_requests"] <= v["idle_bound"]))  # fmt: skip
    print(bound_row("idle cycle: runs / wall time (s)", f"{v['idle_runs']} / {v['idle_seconds']}", "0 runs"))
    print(bound_row("after unlinks: idle cycle Graph requests", v["unlink_idle_requests"],
                    f"<= {v['unlink_idle_bound']} (was {v['unlink_requests_before_merge']}, "
                    f"{v['unlink_merged_rounds']} rounds merged)",
                    v["unlink_idle_requests"] <= v["unlink_idle_bound"]))  # fmt: skip
    print(bound_row("changes: Graph requests", v["change_requests"],
                    f"against {v['changes']} changes ({v['microsoft_changes']} Microsoft, {v['equa_changes']} Equa)"))  # fmt: skip
    print(bound_row("changes: requests per change", f"{v['change_requests'] / max(1, v['changes']):.2f}",
                    f"delta requests {v['change_delta_requests']}, runs {v['change_runs']}"))  # fmt: skip
    print(bound_row("changes: wall time (s) / 429 answers", f"{v['change_seconds']} / {v['change_429']}", ""))
    print(bound_row("changes: every organization converged", v["converged"],
                    f"{v['unconverged_organizations']} not converged", v["converged"]))  # fmt: skip
    print(bound_row("fairness: p95 start delay (s)", v["p95_start_delay_s"],
                    f"one tenant ({v['throttled_tenant_organizations']} orgs) throttled hard"))  # fmt: skip
    print(bound_row("fairness: max start delay (s)", v["max_start_delay_s"], f"{v['fairness_runs']} runs"))
    print(bound_row("fairness: p95 from the run's request (s)", v["fairness_p95_request_to_start_s"],
                    "the cycle's own time left out"))  # fmt: skip
    print(bound_row("no throttling: p95 / max start delay (s)",
                    f"{v['change_p95_start_delay_s']} / {v['change_max_start_delay_s']}",
                    "the changes' first cycle, for comparison"))  # fmt: skip
    print(
        bound_row(
            "double work (overlapping runs, twice written)", v["double_work"], "0", v["double_work"] == 0
        )
    )
    print(bound_row("peak RSS (MB)", v["peak_rss_mb"], v["rss_of"]))
    for count, result in v.get("throughput", {}).items():
        print(bound_row(f"throughput, {count} worker(s): runs/min", result["runs_per_minute"],
                        f"{result['runs']} full syncs in {result['seconds']} s, double work "
                        f"{result['double_work']}, peak RSS {result['peak_rss_mb']} MB"))  # fmt: skip
    if v.get("failed_tenant_cycles"):
        print(
            bound_row("tenants failed in a cycle (tried next cycle)", v["failed_tenant_cycles"], "0", False)
        )
    print(f"  data built in {v['build_seconds']} s; whole bench {v['bench_seconds']} s")
    for note in notes:
        print(f"  note: {note}")


async def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from fleet_support.cluster import Cluster, job_resources
    from fleet_support.databases import scratch_database
    from fleet_support.phases import Bench
    from fleet_support.seeding import plan_fleet, seed_database
    from graph_emulator.testing import start_emulator

    started = time.perf_counter()
    memberships = args.memberships or 200 * args.organizations
    with tempfile.TemporaryDirectory() as tmp:
        emu = start_emulator(Path(tmp) / "emulator", throttling=True, lag_seconds=0)
        try:
            emu.load_fleet(args.tenants, args.organizations, memberships)
            emu.set_faults(latency_ms=args.latency_ms)
            model = plan_fleet(emu.emulator)
            names = {t.id: (t.display_name, t.domain) for t in emu.emulator.directory.tenants.values()}
            async with scratch_database(args.database_url, Path(tmp)) as url:
                await seed_database(url, model, names)
                build_seconds = time.perf_counter() - started
                workers = args.workers if args.workers is not None else (2 if args.redis_url else 0)
                if workers and not args.redis_url:
                    raise SystemExit("--workers needs --redis-url (the workers take runs from Redis)")
                cluster = Cluster(url, args.redis_url if workers else None, Path(tmp), workers)
                cluster.tenant_concurrency = args.tenant_concurrency
                cluster.lease_seconds = args.lease
                cluster.scheduler_pool_size = args.scheduler_pool
                if cluster.tenant_concurrency is None and not args.database_url:
                    # SQLite takes one writer at a time: one process with every tenant's runs at once starves
                    # its event loop until writers time out ("database is locked"); two runs per tenant keeps up.
                    cluster.tenant_concurrency = SQLITE_TENANT_CONCURRENCY
                settings = cluster.settings(emu)
                await clear_queue(args.redis_url)
                cluster.start_workers(emu, workers)
                try:
                    async with job_resources(settings) as resources:
                        bench = Bench(emu, cluster, resources, model, args.run_timeout)
                        await bench.first_reconcile()
                        await bench.idle_cycle()
                        await bench.changes()
                        await bench.fairness()
                        await bench.after_unlinks()
                        figures = bench.figures.values
                        figures["peak_rss_mb"] = round(bench.peak_rss(), 1)
                        if args.throughput and args.redis_url:
                            counts = [int(c) for c in args.throughput.split(",") if c.strip()]
                            await bench.throughput(counts, min(args.throughput_sample, len(model.orgs)))
                finally:
                    cluster.stop_workers()
                    await clear_queue(args.redis_url)
        finally:
            emu.stop()
    figures.update(
        double_work=figures["first_double_work"]
        + figures["change_double_work"]
        + figures["fairness_double_work"],
        memberships=model.memberships,
        mode=(
            f"PostgreSQL, Redis, {workers} equa worker(s)"
            if workers
            else ("PostgreSQL" if args.database_url else "SQLite") + ", one process (embedded broker)"
        )
        + f", {cluster.tenant_concurrency or 'default'} run(s) at once per tenant"
        + (f", scheduler pool {cluster.scheduler_pool_size}" if cluster.scheduler_pool_size else ""),
        rss_of="the largest worker" if workers else "the one process (emulator included)",
        build_seconds=round(build_seconds, 1),
        bench_seconds=round(time.perf_counter() - started, 1),
    )
    return figures, bench.figures.notes


async def clear_queue(redis_url: str | None) -> None:
    """Runs left in the queue by an earlier, interrupted bench would be taken by this one's workers."""
    if not redis_url:
        return
    import redis.asyncio as redis

    from equa.microsoft.tasks import QUEUE_NAME

    client = redis.Redis.from_url(redis_url)
    try:
        await client.delete(QUEUE_NAME)
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    minutes = max(1, round((30 + args.organizations * SECONDS_PER_ORGANIZATION) / 60))
    print(f"Expected duration: about {minutes} minute(s).", flush=True)
    figures, notes = asyncio.run(run(args))
    print_table(args, figures, notes)
    args.json.write_text(json.dumps(figures, indent=2, default=str))
    print(f"\nFigures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
