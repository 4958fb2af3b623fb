"""The small fleet (20 tenants, 200 organizations) through bench/fleet_bench.py, as a correctness test.

Once on SQLite in one process (embedded broker), once on PostgreSQL with Redis and two `equa worker` processes.
Each asserts what a user of the fleet would notice: every organization in step after changes on both sides, no
organization run twice at once and no membership written twice, Graph requests within their bounds (first
reconcile <= 1.1 x the sum of per-organization lower bounds, a cycle with no changes <= ceil(groups/50) per
tenant), and no 429. Timings are printed (run with -s to see the table), never asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fleet_bench.py"
SMALL = ["--tenants", "20", "--organizations", "200"]


def run_bench(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "fleet.json"
    result = subprocess.run(
        # A run whose task was lost (on a loaded machine a SQLite writer can time out) is given up after a
        # 30 s lease, and the next cycle asks again, as the scheduler does.
        [
            sys.executable,
            str(BENCH),
            *SMALL,
            "--json",
            str(out),
            "--lease",
            "30",
            "--run-timeout",
            "240",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def assert_within_bounds(figures: dict[str, Any]) -> None:
    assert figures["first_requests"] <= math.floor(1.1 * figures["first_lower_bound"]), figures
    assert figures["first_429"] == 0
    assert figures["first_runs"] >= 200  # every organization had its first reconcile
    assert figures["idle_requests"] <= figures["idle_bound"]
    assert figures["idle_runs"] == 0
    assert figures["unlink_idle_requests"] <= figures["unlink_idle_bound"]
    assert figures["unlink_idle_runs"] == 0
    assert figures["changes"] == 800  # 1 % of 40,000 memberships on each side
    assert figures["change_runs"] > 0
    assert figures["converged"] is True
    assert figures["double_work"] == 0
    assert figures["fairness_runs"] > 0
    assert figures["peak_rss_mb"] > 0


def test_small_fleet_on_sqlite_in_one_process(tmp_path: Path) -> None:
    figures = run_bench(tmp_path)
    assert figures["mode"].startswith("SQLite, one process")
    assert_within_bounds(figures)


@pytest.mark.postgres
@pytest.mark.redis
def test_small_fleet_on_postgres_with_redis_and_two_workers(tmp_path: Path) -> None:
    database_url = os.environ.get("EQUA_TEST_DATABASE_URL")
    redis_url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not database_url or not redis_url:
        pytest.skip(
            "needs PostgreSQL and Redis: EQUA_TEST_DATABASE_URL and EQUA_TEST_REDIS_URL (make test sets them)"
        )
    figures = run_bench(tmp_path, "--database-url", database_url, "--redis-url", redis_url, "--workers", "2")
    assert figures["mode"].startswith("PostgreSQL, Redis, 2 equa worker(s)")
    assert_within_bounds(figures)
