"""Overhead of GraphClient per request compared with raw httpx, both against the same emulator in one run.

Run: .venv/bin/python bench/graph_client_bench.py [--requests 2000] [--concurrency 1]
Prints numbers only; it never asserts timings.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from equa.microsoft.graph.auth import TokenProvider
from equa.microsoft.graph.client import GraphClient
from equa.microsoft.graph.config import GraphConfig
from equa.microsoft.graph.throttle import InProcessThrottleGate
from graph_emulator.testing import start_emulator


async def _timed(label: str, call, requests: int, concurrency: int) -> float:
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            queue.pop()
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    per_request_ms = elapsed / requests * 1000
    print(f"{label:<12} {requests} requests in {elapsed:.3f} s: {per_request_ms:.3f} ms per request")
    return per_request_ms


async def run(requests: int, concurrency: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        emulator = start_emulator(Path(data_dir), throttling=False)
        try:
            config = GraphConfig(
                client_id=emulator.client_id,
                tenant_id=emulator.tenant_id,
                authority_host=emulator.base_url,
                graph_url=emulator.graph_url,
                client_secret=emulator.client_secret,
                ca_bundle=Path(emulator.ca_path),
                max_in_flight=max(8, concurrency),
            )
            tokens = TokenProvider(config)
            token = await tokens.get_token()
            raw = httpx.AsyncClient(verify=config.ssl_context(), timeout=30)
            client = GraphClient(config, tokens, gate=InProcessThrottleGate(config.max_in_flight))
            url = f"{config.graph_url}/groups"
            params = {"$top": "1"}

            async def raw_call() -> None:
                response = await raw.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
                response.raise_for_status()

            async def client_call() -> None:
                await client.get("/groups", params=params)

            # Warm both connection pools before measuring.
            await _timed("warm-up raw", raw_call, 50, concurrency)
            await _timed("warm-up ours", client_call, 50, concurrency)
            raw_ms: list[float] = []
            ours_ms: list[float] = []
            for _ in range(rounds):
                raw_ms.append(await _timed("raw httpx", raw_call, requests, concurrency))
                ours_ms.append(await _timed("GraphClient", client_call, requests, concurrency))
            raw_median = statistics.median(raw_ms)
            ours_median = statistics.median(ours_ms)
            print(
                f"\nconcurrency {concurrency}, median of {rounds} rounds: raw httpx {raw_median:.3f} ms, "
                f"GraphClient {ours_median:.3f} ms per request"
            )
            print(
                f"overhead {ours_median - raw_median:+.3f} ms per request; "
                f"ratio GraphClient / raw httpx = {ours_median / raw_median:.3f}"
            )
            await raw.aclose()
            await client.aclose()
        finally:
            emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.epilog = "Expected duration: about 8 s with the defaults; it grows with --requests x --rounds."
    args = parser.parse_args()
    seconds = 3 + args.requests * args.rounds * 2 * 0.0008 / max(1, min(args.concurrency, 8))
    print(f"Expected duration: about {seconds:.0f} s.", flush=True)
    asyncio.run(run(args.requests, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
