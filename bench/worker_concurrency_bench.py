"""One worker's syncs at once: wall time of K organizations' syncs by `--concurrency` and EQUA_GRAPH_MAX_IN_FLIGHT.

    .venv/bin/python bench/worker_concurrency_bench.py [--organizations 30] [--members 300] [--latency-ms 50]
        [--concurrency 1,4,10,30] [--in-flight 2,8,32] [--database-url postgresql+asyncpg://.../empty_db]

K organizations, each linked to its own empty group and with M team members in the tenant, are synced the way one
`equa worker` runs them: one Graph client (its in-flight cap, pacing and throttle gate shared by every sync of the
process) and up to --concurrency syncs at once. The emulator answers with throttling on (tenant size M) and
--latency-ms per request. For every pair of values the groups are emptied again and all K syncs run; the table
shows wall time, syncs per minute and Graph requests. Prints numbers only; it never asserts timings.
The database is a temporary SQLite file unless --database-url names an empty PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def tenant_seed(emu: Any, organizations: int, members: int) -> dict[str, Any]:
    from graph_emulator import seeds

    users = [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"concurrency-bench/{i}")),
            "displayName": f"Person {i}",
            "mail": f"person{i}@{emu.tenant_domain}",
            "mailNickname": f"person{i}",
            "userPrincipalName": f"person{i}@{emu.tenant_domain}",
            "userType": "Member",
            "accountEnabled": True,
        }
        for i in range(organizations * members)
    ]
    groups = [
        {
            "id": group_id(index),
            "displayName": f"Team {index}",
            "groupTypes": ["Unified"],
            "mailEnabled": True,
            "securityEnabled": False,
            "mailNickname": f"team-{index}",
            "visibility": "Private",
            "members": [],
            "owners": [],
        }
        for index in range(organizations)
    ]
    tenant = {
        "id": emu.tenant_id,
        "domain": emu.tenant_domain,
        "displayName": "Contoso",
        "size": "M",
        "apps": seeds.default_apps(),
        "users": users,
        "groups": groups,
    }
    return {"tenants": [tenant]}


def group_id(index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"concurrency-bench/group/{index}"))


async def prepare_database(url: str, organizations: int, members: int, domain: str) -> list[uuid.UUID]:
    from sqlalchemy import insert

    from equa.accounts.models import User
    from equa.db.engine import create_engine_for
    from equa.db.migrate import upgrade_database_async
    from equa.db.models_registry import import_all_models
    from equa.organizations.models import Membership, Organization, Role

    import_all_models()
    await upgrade_database_async(url)
    engine = create_engine_for(url)
    ids = [uuid.uuid4() for _ in range(organizations)]
    async with engine.begin() as connection:
        await connection.execute(
            insert(Organization),
            [
                {"id": org, "name": f"Bench {i}", "microsoft_group": uuid.UUID(group_id(i))}
                for i, org in enumerate(ids)
            ],
        )
        for i, org in enumerate(ids):
            users = [
                {
                    "id": uuid.uuid4(),
                    "email": f"person{i * members + j}@{domain}",
                    "email_normalized": f"person{i * members + j}@{domain}",
                    "display_name": f"Person {i * members + j}",
                }
                for j in range(members)
            ]
            await connection.execute(insert(User), users)
            await connection.execute(
                insert(Membership),
                [
                    {"id": uuid.uuid4(), "organization_id": org, "user_id": u["id"], "role": Role.MEMBER}
                    for u in users
                ],
            )
    await engine.dispose()
    return ids


async def sync_all(
    settings: Any, organizations: list[uuid.UUID], concurrency: int
) -> tuple[float, list[str]]:
    """Queue one run per organization, then run them as a worker does: one Graph client, `concurrency` at once."""
    from equa.db.engine import create_engine_for_settings, create_session_factory
    from equa.microsoft.graph import build_graph_client
    from equa.microsoft.scope import GroupScope
    from equa.microsoft.sync.execute import execute_run
    from equa.microsoft.sync.runs import request_sync
    from equa.organizations.models import Organization

    engine = create_engine_for_settings(settings)
    factory = create_session_factory(engine)
    try:
        run_ids = []
        async with factory() as session:
            for org_id in organizations:
                organization = await session.get(Organization, org_id)
                run = await request_sync(session, organization, None, False, "schedule", enqueue=False)
                run_ids.append(run.id)
            await session.commit()
        slots = asyncio.Semaphore(concurrency)
        scope = GroupScope.from_settings(settings)
        async with build_graph_client(settings) as graph:

            async def one(run_id: uuid.UUID) -> str:
                async with slots:
                    return str(await execute_run(factory, graph, run_id, scope=scope))

            started = time.perf_counter()
            statuses = await asyncio.gather(*(one(r) for r in run_ids))
            return time.perf_counter() - started, statuses
    finally:
        await engine.dispose()


def expected_seconds(args: argparse.Namespace) -> float:
    pairs = len(args.concurrency.split(",")) * len(args.in_flight.split(","))
    # Measured: 2 to 8 s per pair of values for 30 syncs of 300 members (0.25 s each one at a time, less together).
    per_pair = args.organizations * (0.05 + args.members / 3000) * args.latency_ms / 50
    return 10 + pairs * per_pair


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Expected duration: about 1 minute with the defaults (printed before it starts).",
    )
    parser.add_argument("--organizations", type=int, default=30)
    parser.add_argument("--members", type=int, default=300, help="team members per organization")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", default="1,4,10,30", help="values of worker --concurrency")
    parser.add_argument("--in-flight", default="2,8,32", help="values of EQUA_GRAPH_MAX_IN_FLIGHT")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    print(f"Expected duration: about {expected_seconds(args):.0f} s.", flush=True)

    from equa.settings import Settings
    from graph_emulator.testing import start_emulator

    with tempfile.TemporaryDirectory() as tmp:
        emu = start_emulator(Path(tmp) / "emulator", throttling=True)
        try:
            url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            seed = tenant_seed(emu, args.organizations, args.members)
            organizations = asyncio.run(
                prepare_database(url, args.organizations, args.members, emu.tenant_domain)
            )
            print(
                f"\n{args.organizations} organizations x {args.members} members, first syncs into empty groups, "
                f"{args.latency_ms:g} ms per Graph request, {url.split(':')[0]}"
            )
            print(
                f"  {'--concurrency':>13} {'in flight':>9} {'wall s':>8} {'syncs/min':>9} {'requests':>9} {'429s':>5}"
            )
            for in_flight in [int(v) for v in args.in_flight.split(",")]:
                for concurrency in [int(v) for v in args.concurrency.split(",")]:
                    emu.reset(seed)
                    emu.set_faults(latency_ms=args.latency_ms)
                    emu.reset_stats()
                    settings = Settings(
                        database_url=url,
                        data_dir=Path(tmp) / "data",
                        ms_auth_enabled=True,
                        ms_auth_client_id=emu.client_id,
                        ms_auth_tenant_id=emu.tenant_id,
                        ms_auth_secret=emu.client_secret,
                        ms_authority_host=emu.base_url,
                        ms_graph_url=emu.graph_url,
                        ms_ca_bundle=Path(emu.ca_path),
                        graph_max_in_flight=in_flight,
                        db_pool_size=max(5, concurrency),
                        # The bench links its groups directly in the database, as an operator's grants would.
                        ms_group_scope="tenant",
                    )
                    seconds, statuses = asyncio.run(sync_all(settings, organizations, concurrency))
                    stats = emu.stats()
                    bad = [s for s in statuses if s != "succeeded"]
                    print(
                        f"  {concurrency:>13} {in_flight:>9} {seconds:>8.1f} {len(statuses) / seconds * 60:>9.0f} "
                        f"{stats['graph_requests']:>9,} {stats['throttled']:>5}"
                        + (f"  not succeeded: {bad}" if bad else ""),
                        flush=True,
                    )
        finally:
            emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
