"""House rules the code must keep (docs/architecture.md): db/ knows nothing of HTTP, importing a module changes no
SQLAlchemy session in the process, no module rebinds a global, and no source module grows over 500 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 500
# Data, not logic: the emulator's seed data may be as long as the tenant it describes.
LONG_DATA_MODULES = {"graph_emulator/seeds.py"}
# The one module still holding process state behind `global` (the password hashing pool): a ratchet, not a licence.
GLOBAL_STATE_HOLDOUTS = {"equa/accounts/passwords.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_database_layer_imports_no_web_framework() -> None:
    offenders = {
        str(path.relative_to(SOURCE_ROOT)): sorted(
            name for name in _imports(path) if name.split(".")[0] in {"fastapi", "starlette"}
        )
        for path in (SOURCE_ROOT / "equa" / "db").rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_no_module_rebinds_a_global() -> None:
    """`global` is the tell of state held by a module; state belongs to the app, the worker or an object."""
    offenders = []
    for path in (SOURCE_ROOT / "equa").rglob("*.py"):
        if str(path.relative_to(SOURCE_ROOT)) in GLOBAL_STATE_HOLDOUTS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Global):
                offenders.append(
                    f"{path.relative_to(SOURCE_ROOT)}:{node.lineno} global {', '.join(node.names)}"
                )
    assert offenders == []


def test_importing_every_module_hooks_no_session() -> None:
    # In a fresh interpreter: this test process has already imported (and started apps from) most modules.
    script = """
import importlib, pkgutil
import equa
for module in pkgutil.walk_packages(equa.__path__, "equa."):
    if ".migrations." not in module.name:
        importlib.import_module(module.name)
from sqlalchemy.orm import Session
events = ("after_flush", "after_commit", "after_rollback", "after_soft_rollback", "do_orm_execute")
hooked = [name for name in events if len(getattr(Session().dispatch, name))]
print(",".join(hooked))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing equa hooks every session on: {result.stdout.strip()}"


def test_no_source_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(SOURCE_ROOT)): lines
        for path in SOURCE_ROOT.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and str(path.relative_to(SOURCE_ROOT)) not in LONG_DATA_MODULES
    }
    assert long == {}
