"""Where Microsoft's raw examples (shared/graph-reference) are, for the tests that compare against them."""

from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE_PLACES = (
    Path(__file__).resolve().parents[2] / "shared" / "graph-reference",  # beside the project's checkout
    Path("/work/shared/graph-reference"),
)


def reference_dir() -> Path:
    """The examples' folder; without it the calling test (or module) skips, saying where it looked."""
    for place in REFERENCE_PLACES:
        if place.is_dir():
            return place
    pytest.skip(
        f"Microsoft's reference examples are not here: looked in {', '.join(map(str, REFERENCE_PLACES))}",
        allow_module_level=True,
    )
