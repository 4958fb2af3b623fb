"""Fixtures: one emulator per test module over real HTTPS, reset to the default seed before each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator_helpers import Graph, fetch_token

from graph_emulator.testing import RunningEmulator, start_emulator


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    data_dir: Path = tmp_path_factory.mktemp("emulator")
    with start_emulator(data_dir) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _fresh_state(request: pytest.FixtureRequest) -> None:
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").reset()


@pytest.fixture
def graph(emulator: RunningEmulator) -> Iterator[Graph]:
    client = Graph(emulator, fetch_token(emulator))
    yield client
    client.http.close()
