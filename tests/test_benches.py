"""Every bench answers --help at once, without running, and says how long it takes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHES = sorted((Path(__file__).resolve().parent.parent / "bench").glob("*.py"))


def test_there_are_benches() -> None:
    assert len(BENCHES) >= 4


@pytest.mark.parametrize("bench", BENCHES, ids=[b.name for b in BENCHES])
def test_help_prints_usage_and_the_expected_duration_without_running(bench: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(bench), "--help"], capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout[:300]
    assert "Expected duration" in " ".join(result.stdout.split())
    assert elapsed < 15, f"--help took {elapsed:.1f} s: it ran the bench?"


def test_a_bench_prints_its_expected_duration_before_anything_else() -> None:
    bench = next(b for b in BENCHES if b.name == "graph_client_bench.py")
    result = subprocess.run(
        [sys.executable, str(bench), "--requests", "20", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("Expected duration: about ")
