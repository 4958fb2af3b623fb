"""Requests per second the emulator serves for member listing, $batch and token requests on this machine.

    .venv/bin/python bench/emulator_bench.py [--seconds 3]

Seeds a tenant of 20,000 users and a group of 10,000 members, then measures each request kind for --seconds with
8 client threads. Prints numbers only; it never asserts timings.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from graph_emulator import seeds
from graph_emulator.testing import start_emulator

SECONDS = 3.0
WORKERS = 8


def measure(name: str, make_client, call) -> None:  # type: ignore[no-untyped-def]
    def worker(_: int) -> int:
        done = 0
        with make_client() as client:
            deadline = time.perf_counter() + SECONDS
            while time.perf_counter() < deadline:
                response = call(client)
                assert response.status_code < 400, response.text[:300]
                done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        total = sum(pool.map(worker, range(WORKERS)))
    print(f"{name:<45} {total / (time.perf_counter() - started):>9.0f} requests/s")


def main() -> int:
    global SECONDS
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Expected duration: about 2 s plus 4 x --seconds (14 s by default).",
    )
    parser.add_argument("--seconds", type=float, default=SECONDS, help="measuring time per request kind")
    SECONDS = parser.parse_args().seconds
    print(
        f"Expected duration: about {2 + 4 * SECONDS:.0f} s (seeding 20,000 users, then 4 x {SECONDS:g} s).",
        flush=True,
    )
    with start_emulator(Path(tempfile.mkdtemp()), users=20000, groups=50, throttling=False) as emu:
        context = ssl.create_default_context(cafile=str(emu.ca_path))
        form = {"client_id": emu.client_id, "client_secret": emu.client_secret, "grant_type": "client_credentials",
                "scope": "https://graph.microsoft.com/.default"}  # fmt: skip
        with httpx.Client(verify=context, trust_env=False) as http:
            token = http.post(emu.token_url, data=form).json()["access_token"]
        big = seeds.stable_id(emu.tenant_domain, "bench", "big-group")
        member_ids = [seeds.stable_id(emu.tenant_domain, "user", str(i)) for i in range(10000)]
        emu.add_group(displayName="Big", mailNickname="big", groupTypes=["Unified"], mailEnabled=True,
                      securityEnabled=False, id=big)  # fmt: skip
        for start in range(0, len(member_ids), 2000):
            emu.add_members(big, member_ids[start : start + 2000])
        headers = {"Authorization": f"Bearer {token}"}

        def client() -> httpx.Client:
            return httpx.Client(verify=context, trust_env=False, headers=headers, timeout=30)

        measure("GET /groups/{id}/members ($top=999, 10k group)", client,
                lambda c: c.get(f"{emu.graph_url}/groups/{big}/members?$top=999&$select=id"))  # fmt: skip
        measure("GET /groups/{id}/members (default page)", client,
                lambda c: c.get(f"{emu.graph_url}/groups/{big}/members"))  # fmt: skip
        items = {
            "requests": [{"id": str(i), "method": "GET", "url": f"/users/{member_ids[i]}"} for i in range(20)]
        }
        measure(
            "POST /$batch (20 user reads)", client, lambda c: c.post(f"{emu.graph_url}/$batch", json=items)
        )
        measure("POST /oauth2/v2.0/token (client secret)", client, lambda c: c.post(emu.token_url, data=form))
    return 0


if __name__ == "__main__":
    sys.exit(main())
