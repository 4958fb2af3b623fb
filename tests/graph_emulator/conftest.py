"""Fixtures: `emu` (tests/conftest.py) on an emulator of each module's own that throttles like Graph, reset to the
default seed before each test, and `graph`, a small client with a token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator_helpers import Graph, fetch_token

from graph_emulator.testing import RunningEmulator, start_emulator


@pytest.fixture(scope="module")
def graph_emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    """The plugin's server, overridden: one per module (what a module changes stays in it), throttling on."""
    data_dir: Path = tmp_path_factory.mktemp("emulator")
    with start_emulator(data_dir) as emu:
        yield emu


@pytest.fixture
def graph(emu: RunningEmulator) -> Iterator[Graph]:
    client = Graph(emu, fetch_token(emu))
    yield client
    client.http.close()
