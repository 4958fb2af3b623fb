"""Load on the read endpoints of the served API: throughput, latency percentiles and errors, beside /healthz.

Starts the Graph emulator (own process, 50 ms latency per Graph request), seeds an SQLite installation with an
organization linked to a group, runs one sync so there is history, serves the app with `equa serve` (uvicorn), and
drives N concurrent clients for D seconds in two phases. Each client cycles over the status, group, group members
and sync-runs endpoints and /healthz, so all of them are measured under the same load; the ratio column is each
endpoint's p50 over /healthz's, our own overhead on top of the bare framework.

- polling: each client sends `--rate` requests per second on a fixed schedule, as open settings pages do; a late
  answer does not postpone the next request, so queueing shows in the latencies. The status target applies here.
- closed: each client sends its next request as soon as the last is answered. The process is then saturated by
  construction and latency is clients / throughput (Little's law): this phase measures capacity.

The server's CPU time per answered request is printed for each phase (psutil).

    .venv/bin/python bench/api_load.py                      # 50 clients, 60 s per phase
    .venv/bin/python bench/api_load.py --clients 20 --duration 10 --phases closed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

from service_harness import (
    ServedApp,
    seed_group_id,
    seed_organization_sync,
    service_environment,
    start_emulator_process,
    tenant_member_emails,
)

STATUS_P99_TARGET_MS = 50.0


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


class KeepAliveClient:
    """One HTTP/1.1 keep-alive connection, minimal on purpose: the load generator must cost far less than the server.

    (httpx's connection pool costs milliseconds per request at 50 concurrent clients on two cores, which would
    swamp what we measure.)
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host = host
        self.port = port
        self.header_block = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.header_block}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def drive(  # type: ignore[no-untyped-def]
    base_url: str,
    paths: dict[str, str],
    headers: dict[str, str],
    clients: int,
    duration: float,
    rate: float = 0.0,
):
    """Closed loop when `rate` is 0 (each client sends its next request as soon as the last one is answered);
    otherwise each client sends `rate` requests per second on a fixed schedule, as browsers polling a page do,
    and a late answer does not postpone the next request (so queueing shows up in the latencies)."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    error_examples: dict[str, str] = {}
    names = list(paths)
    address = httpx.URL(base_url)
    deadline = time.perf_counter() + duration

    async def client(offset: int) -> None:
        connection = KeepAliveClient(address.host, address.port or 80, headers)
        turn = offset
        interval = 1.0 / rate if rate > 0 else 0.0
        # Spread the clients' schedules over one interval so they do not fire in lockstep.
        next_send = time.perf_counter() + interval * (offset / max(clients, 1))
        try:
            while time.perf_counter() < deadline:
                name = names[turn % len(names)]
                turn += 1
                if interval:
                    scheduled = next_send
                    next_send += interval
                    delay = scheduled - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    # Measured from when the request was due: a send delayed by a slow answer counts as waiting.
                    started = scheduled
                else:
                    started = time.perf_counter()
                try:
                    status, body = await connection.get(paths[name])
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors[name] += 1
                    error_examples.setdefault(name, type(exc).__name__)
                    await connection.close()
                    continue
                elapsed = time.perf_counter() - started
                if status != 200:
                    errors[name] += 1
                    error_examples.setdefault(name, f"{status} {body[:200]!r}")
                    continue
                latencies[name].append(elapsed)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - started
    return latencies, errors, error_examples, wall


def report(
    title: str,
    paths: dict[str, str],
    latencies: dict[str, list[float]],
    errors: dict[str, int],
    examples: dict[str, str],
    wall: float,
    server_cpu_seconds: float,
) -> tuple[float, int]:
    """Print one phase's table; returns (status p99 in ms, errors)."""
    base_p50 = percentile(latencies["healthz"], 0.5)
    answered = sum(len(values) for values in latencies.values())
    print(f"\n{title}; wall {wall:.1f} s")
    print(
        f"{'endpoint':<15}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'p50/healthz':>13}"
    )
    total_errors = 0
    for name in paths:
        values = latencies[name]
        total_errors += errors[name]
        p50 = percentile(values, 0.5)
        print(
            f"{name:<15}{len(values) / wall:>9.1f}{p50 * 1000:>9.1f}{percentile(values, 0.95) * 1000:>9.1f}"
            f"{percentile(values, 0.99) * 1000:>9.1f}{errors[name]:>8}{p50 / base_p50:>13.2f}"
        )
    all_values = [v for values in latencies.values() for v in values]
    print(
        f"{'all':<15}{len(all_values) / wall:>9.1f}{statistics.median(all_values) * 1000:>9.1f}"
        f"{percentile(all_values, 0.95) * 1000:>9.1f}{percentile(all_values, 0.99) * 1000:>9.1f}{total_errors:>8}"
    )
    print(
        f"server CPU {server_cpu_seconds / wall * 100:.0f}% of one core, "
        f"{server_cpu_seconds / max(answered, 1) * 1000:.2f} ms per answered request"
    )
    for name, example in examples.items():
        print(f"first error on {name}: {example}")
    return percentile(latencies["status"], 0.99) * 1000, total_errors


def server_cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per phase")
    parser.add_argument("--graph-latency-ms", type=int, default=50)
    parser.add_argument("--only", default=None, help="comma-separated endpoint names to load (default: all)")
    parser.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="requests per second per client in the polling phase (default 1, a page polling every second)",
    )
    parser.add_argument(
        "--phases",
        default="polling,closed",
        help="polling (each client on a fixed schedule) and/or closed (each client as fast as answered)",
    )
    parser.epilog = (
        "Expected duration: about 20 s of set-up plus --duration per phase (2 min 20 s by default)."
    )
    args = parser.parse_args()
    phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    print(
        f"Expected duration: about {20 + len(phases) * args.duration:.0f} s "
        f"(20 s of set-up, then {len(phases)} phase(s) of {args.duration:g} s).",
        flush=True,
    )

    outcomes: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="equa-load-") as tmp:
        root = Path(tmp)
        emulator = start_emulator_process(root / "emulator", faults={"latency_ms": args.graph_latency_ms})
        app = None
        try:
            database_url = f"sqlite+aiosqlite:///{root / 'equa.db'}"
            team = tenant_member_emails(10)
            seeded = seed_organization_sync(database_url, admin_email=team[0], team=team)
            app = ServedApp(service_environment(emulator, database_url, root / "data"), root / "serve.log")
            org = f"/api/v1/organizations/{seeded.organization_id}/microsoft"
            with httpx.Client(base_url=app.base_url, headers=seeded.headers, timeout=60) as http:
                linked = http.post(f"{org}/link-group", json={"groupId": seed_group_id("engineering")})
                linked.raise_for_status()
                sync = http.post(f"{org}/sync-members", json={})
                if sync.status_code not in (200, 202):
                    print(f"sync request answered {sync.status_code}: {sync.text[:300]}", file=sys.stderr)
                for _ in range(300):
                    runs = http.get(f"{org}/sync-runs").json()
                    items = runs.get("items", runs) if isinstance(runs, dict) else runs
                    if items and items[0].get("status") not in ("queued", "running"):
                        break
                    time.sleep(0.1)
            paths = {
                "status": f"{org}/status",
                "group": f"{org}/group",
                "group/members": f"{org}/group/members",
                "sync-runs": f"{org}/sync-runs",
                "healthz": "/healthz",
            }
            if args.only:
                wanted = {name.strip() for name in args.only.split(",")} | {"healthz"}
                paths = {name: path for name, path in paths.items() if name in wanted}
            print(
                f"{args.clients} clients, {args.duration:g} s per phase, SQLite, "
                f"Graph emulator at {args.graph_latency_ms} ms per request; each client cycles over {', '.join(paths)}"
            )
            for phase in phases:
                rate = args.rate if phase == "polling" else 0.0
                cpu_before = server_cpu_seconds(app.pid)
                latencies, errors, examples, wall = asyncio.run(
                    drive(app.base_url, paths, seeded.headers, args.clients, args.duration, rate)
                )
                title = (
                    f"polling: each client sends {rate:g} request/s on a fixed schedule "
                    f"({args.clients * rate:g} req/s offered)"
                    if rate
                    else "closed loop: each client sends its next request as soon as the last is answered (saturation)"
                )
                outcomes[phase] = report(
                    title, paths, latencies, errors, examples, wall, server_cpu_seconds(app.pid) - cpu_before
                )
        finally:
            if app is not None:
                app.stop()
            emulator.stop()

    print()
    for phase, (status_p99, total_errors) in outcomes.items():
        verdict = "meets" if status_p99 < STATUS_P99_TARGET_MS and total_errors == 0 else "misses"
        print(
            f"{phase}: status p99 {status_p99:.1f} ms, {total_errors} errors: {verdict} p99 < 50 ms with no errors"
        )
    if "closed" in outcomes:
        print(
            "(closed loop: every client always has a request outstanding, so latency = clients / throughput; "
            "it measures the capacity of one process, not a page's experience)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
