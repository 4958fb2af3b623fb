"""Bookkeeping of the chaos suite: a user who retries, and what a chaos test did.

A chaos module marked `retry_budget("chaos")` gets `settings` with the integration on, pointed at `emu`, with retry
budgets small enough that a chaos run takes seconds (tests/conftest.py). `Caller` sends the
requests an admin would, retries a 503 the way its Retry-After asks, and checks every answer on the way: a failure
a user sees is a 4xx or a 503, always with an `action`, and a 503 always with Retry-After; never a 500.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from emulator_support import member_users
from emulator_support import seed_group_id as seed_group_id

FINAL_RUN_STATUSES = frozenset({"succeeded", "partial", "failed", "abandoned"})


def tenant_members() -> list[dict[str, Any]]:
    """Member (not guest) users of the default tenant that have a mailbox."""
    return member_users(with_mailbox=True)


@dataclass
class Tally:
    """What a chaos test did: operations by endpoint and answer, faults the emulator injected, runs by outcome."""

    answers: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def operations(self) -> int:
        return sum(self.answers.values())

    def add_faults(self, stats: dict[str, Any]) -> None:
        self.faults.update({str(k): int(v) for k, v in (stats.get("faults_injected") or {}).items()})

    def summary(self, name: str) -> str:
        return (
            f"[chaos] {name}: {self.operations} operations ({self.retries} retried 503s), "
            f"answers {dict(sorted(self.answers.items()))}, faults injected {dict(sorted(self.faults.items()))}, "
            f"runs {dict(sorted(self.runs.items()))}, {time.monotonic() - self.started:.1f} s"
        )


def check_answer(response: httpx.Response) -> None:
    """The promise to users: a failure is a 4xx or a 503, with an `action`; a 503 says when to retry."""
    where = (
        f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text}"
    )
    status = response.status_code
    assert status < 500 or status == 503, where
    if status >= 400:
        assert response.headers.get("content-type", "").startswith("application/problem+json"), where
        body = response.json()
        assert body.get("action"), f"no action in the problem: {where}"
        assert body.get("code"), where
    if status == 503:
        assert int(response.headers["Retry-After"]) >= 1, where


class Caller:
    """An admin's client: every answer is checked; a 503 is retried after its Retry-After, a bounded number of times."""

    def __init__(self, client: httpx.AsyncClient, base: str, headers: dict[str, str], tally: Tally) -> None:
        self.client = client
        self.base = base
        self.headers = headers
        self.tally = tally

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    async def once(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> httpx.Response:
        response = await self.client.request(
            method,
            self.url(path),
            json=json,
            params=params or None,
            headers={**self.headers, **(headers or {})},
            timeout=120,
        )
        check_answer(response)
        self.tally.answers[f"{response.status_code}"] += 1
        return response

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        tries: int = 6,
        **params: Any,
    ) -> httpx.Response:
        """Send until the answer is not a 503 (what a user does after "try again in N seconds")."""
        for _ in range(tries - 1):
            response = await self.once(method, path, json=json, headers=headers, **params)
            if response.status_code != 503:
                return response
            self.tally.retries += 1
            await asyncio.sleep(min(float(response.headers["Retry-After"]), 1.0))
        return await self.once(method, path, json=json, headers=headers, **params)

    async def finished_run(self, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the run until it is in a final state; a run that stays queued or running fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            response = await self.call("GET", f"sync-runs/{run_id}")
            assert response.status_code == 200, response.text
            run: dict[str, Any] = response.json()
            if run["status"] in FINAL_RUN_STATUSES:
                self.tally.runs[run["status"]] += 1
                return run
            assert time.monotonic() < deadline, f"run {run_id} is stuck in {run['status']}: {run}"
            await asyncio.sleep(0.2)

    async def sync(self, *, wait: float = 45.0) -> dict[str, Any]:
        """Start a sync (or join the active one) and return it once it has finished."""
        response = await self.call("POST", "sync-members", json={}, wait=wait)
        assert response.status_code in (200, 202), response.text
        return await self.finished_run(response.json()["id"])
