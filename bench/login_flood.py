"""/healthz latency while 50 clients flood the sign-in endpoint with wrong passwords.

Serves the app with `equa serve` (uvicorn, SQLite, production argon2 parameters, no Microsoft settings), creates one
account, then measures /healthz from one prober (a request every 10 ms, one at a time) in three phases:

The flooding clients run in a process of their own, so their CPU use does not show up as /healthz latency.

- idle: nothing else runs; the baseline.
- one account: the clients send wrong passwords for the same account from one address. After the free failures
  the throttle answers 429 without hashing, so the flood costs little.
- new accounts and addresses: every request names a new address from a new client address (X-Forwarded-For, which
  `equa serve` trusts from 127.0.0.1), so the throttle never steps in and every request costs a password hash. This
  is the worst case: it shows that hashing runs off the event loop with bounded concurrency.

Prints /healthz p50/p99 per phase, the ratio of each p99 to the idle p99, and the sign-in answers by status.
Goal: /healthz p99 under 50 ms during a flood.

    .venv/bin/python bench/login_flood.py                 # 50 clients, 10 s per phase
    .venv/bin/python bench/login_flood.py --clients 20 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

from service_harness import ServedApp

HEALTH_P99_TARGET_MS = 50.0
PASSWORD = "the right passphrase 1234"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class RawClient:
    """One keep-alive HTTP/1.1 connection, minimal so the load generator costs far less than the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def probe_health(port: int, stop: asyncio.Event) -> list[float]:
    client = RawClient(port)
    latencies: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        await client.send("GET", "/healthz")
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.01)
    await client.close()
    return latencies


async def flood(
    port: int, email: str | None, stop: asyncio.Event, statuses: Counter[int], index: int
) -> None:
    """Wrong passwords until `stop`: for `email`, or (None) for a new address from a new client address each time."""
    client = RawClient(port)
    for attempt in itertools.count():
        if stop.is_set():
            break
        target = email or f"nobody-{index}-{attempt}@example.com"
        headers = {"Content-Type": "application/json"}
        if email is None:
            headers["X-Forwarded-For"] = f"10.{index}.{attempt // 250 % 250}.{attempt % 250 + 1}"
        body = json.dumps({"email": target, "password": "a wrong guess"}).encode()
        statuses[await client.send("POST", "/api/v1/session", body, headers)] += 1
    await client.close()


def flood_process(
    port: int,
    clients: int,
    duration: float,
    email: str | None,
    results: multiprocessing.Queue[dict[int, int]],
) -> None:
    """The flooding clients, in a process of their own: their CPU use must not delay the prober's readings."""

    async def main() -> dict[int, int]:
        stop = asyncio.Event()
        statuses: Counter[int] = Counter()
        tasks = [asyncio.create_task(flood(port, email, stop, statuses, index)) for index in range(clients)]
        await asyncio.sleep(duration)
        stop.set()
        await asyncio.gather(*tasks)
        return dict(statuses)

    results.put(asyncio.run(main()))


async def phase(
    port: int, clients: int, duration: float, email: str | None, flooding: bool
) -> dict[str, object]:
    stop = asyncio.Event()
    results: multiprocessing.Queue[dict[int, int]] = multiprocessing.Queue()
    flooder = None
    if flooding:
        flooder = multiprocessing.Process(
            target=flood_process, args=(port, clients, duration, email, results), daemon=True
        )
        flooder.start()
        await asyncio.sleep(0.2)  # let the flood start before measuring
    prober = asyncio.create_task(probe_health(port, stop))
    await asyncio.sleep(duration - (0.4 if flooding else 0))
    stop.set()
    latencies = await prober
    statuses: Counter[int] = Counter()
    if flooder is not None:
        statuses.update(await asyncio.to_thread(results.get))
        flooder.join()
    return {"latencies": latencies, "statuses": statuses}


def seed(env: dict[str, str], email: str) -> None:
    """Migrate, and create the account with the production hasher (the one `equa serve` uses)."""
    subprocess.run(
        [sys.executable, "-m", "equa.cli", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    script = (
        "import asyncio\n"
        "from equa.accounts.service import create_user\n"
        "from equa.db.engine import create_engine_for, create_session_factory\n"
        "async def main(url, email, password):\n"
        "    engine = create_engine_for(url)\n"
        "    async with create_session_factory(engine)() as session:\n"
        "        await create_user(session, email, None, password)\n"
        "        await session.commit()\n"
        "    await engine.dispose()\n"
        "import sys\n"
        "asyncio.run(main(*sys.argv[1:]))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, env["EQUA_DATABASE_URL"], email, PASSWORD], env=env, check=True
    )


async def run(port: int, clients: int, duration: float, email: str) -> None:
    results = {
        "idle": await phase(port, clients, duration, email, flooding=False),
        "one account": await phase(port, clients, duration, email, flooding=True),
        "new accounts and addresses": await phase(port, clients, duration, None, flooding=True),
    }
    idle_p99 = percentile(results["idle"]["latencies"], 0.99)  # type: ignore[arg-type]
    print(f"\n{'phase':<28} {'health n':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99/idle':>9}  sign-in answers")
    for name, result in results.items():
        latencies: list[float] = result["latencies"]  # type: ignore[assignment]
        statuses: Counter[int] = result["statuses"]  # type: ignore[assignment]
        p99 = percentile(latencies, 0.99)
        answers = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items())) or "-"
        print(
            f"{name:<28} {len(latencies):>8} {percentile(latencies, 0.5):>8.1f} {p99:>8.1f} "
            f"{p99 / idle_p99:>9.1f}  {answers}"
        )
    worst = max(percentile(r["latencies"], 0.99) for r in results.values())  # type: ignore[arg-type]
    verdict = "met" if worst < HEALTH_P99_TARGET_MS else "NOT met"
    print(
        f"\ngoal /healthz p99 < {HEALTH_P99_TARGET_MS:.0f} ms during a flood: {verdict} (worst {worst:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Expected duration: about 3 x --duration plus 10 s of start-up (40 s by default).",
    )
    parser.add_argument("--clients", type=int, default=50, help="flooding clients (default 50)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (default 10)")
    parser.add_argument(
        "--hash-concurrency",
        type=int,
        default=None,
        help="EQUA_PASSWORD_HASH_CONCURRENCY of the served app (default: the setting's default)",
    )
    args = parser.parse_args()
    print(
        f"login flood: {args.clients} clients, 3 phases of {args.duration:.0f} s.\n"
        f"Expected duration: about {3 * args.duration + 10:.0f} s (start-up included).",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="equa-login-flood-") as tmp:
        data_dir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MS_", "EQUA_"))}
        env.update(
            {
                "EQUA_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'equa.db'}",
                "EQUA_DATA_DIR": str(data_dir),
                "EQUA_SECRET_KEY": "login-flood-bench-" + "k" * 32,
                "EQUA_LOG_LEVEL": "WARNING",
            }
        )
        if args.hash_concurrency:
            env["EQUA_PASSWORD_HASH_CONCURRENCY"] = str(args.hash_concurrency)
        email = "flooded@example.com"
        seed(env, email)
        served = ServedApp(env, data_dir / "serve.log")
        try:
            check = httpx.post(
                f"{served.base_url}/api/v1/session", json={"email": email, "password": PASSWORD}
            )
            assert check.status_code == 200, check.text
            asyncio.run(run(served.port, args.clients, args.duration, email))
        finally:
            served.stop()
            if os.environ.get("LOGIN_FLOOD_SHOW_LOG"):
                print(served.output()[-6000:])


if __name__ == "__main__":
    main()
