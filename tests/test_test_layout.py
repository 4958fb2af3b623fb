"""How the test suite itself is laid out: fixtures come from conftest files (never imported from a helper module),
the emulator is started by one fixture name, and a misspelt marker fails collection."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PLUGIN = ROOT / "src" / "graph_emulator" / "pytest_plugin.py"
# The session's emulator is `graph_emulator_server` (the plugin's, overridden under the same name by the Graph-edge
# and emulator suites); tests take it as `graph_emulator` or `emu`. The fuzz run serves its own `equa serve` for the
# whole session from an emulator no other test may reset, so it keeps one of its own.
EMULATOR_FIXTURES = {"graph_emulator_server", "fuzz_emulator"}


def _is_fixture(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
        "fixture" in ast.unparse(decorator) for decorator in node.decorator_list
    )


def _fixtures_by_module() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if _is_fixture(node):
                assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                found.setdefault(path.stem, set()).add(node.name)
    return found


def test_no_test_module_imports_a_fixture() -> None:
    """A fixture imported by name shadows conftest's and hides where it comes from; fixtures live in conftest.py."""
    fixtures = _fixtures_by_module()
    imported = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                source = node.module.rsplit(".", 1)[-1]
                names = {alias.name for alias in node.names} & fixtures.get(source, set())
                if names:
                    imported.append(f"{path.relative_to(ROOT)}: {sorted(names)} from {node.module}")
    assert imported == []


def test_the_emulator_is_started_by_one_fixture_name() -> None:
    starters = set()
    for path in [*TESTS.rglob("*.py"), PLUGIN]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if _is_fixture(node) and "start_emulator(" in ast.unparse(node):
                assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                starters.add(node.name)
    assert starters == EMULATOR_FIXTURES


def test_markers_are_strict_and_every_marker_in_use_is_registered() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"][
        "ini_options"
    ]
    assert "--strict-markers" in options["addopts"].split()
    registered = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in options["markers"]}
    used = set()
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "mark"
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "pytest"
            ):
                used.add(node.attr)
    builtin = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings", "asyncio"}
    assert used - builtin <= registered, (
        f"markers used but not registered: {sorted(used - builtin - registered)}"
    )
