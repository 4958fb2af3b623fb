"""The Microsoft domain's SQL lives in microsoft/repository.py: its services and routes build no queries.

The sync's own persistence (sync/recorder.py, sync/lifecycle.py), the tenant connections' repository
(tenants/repository.py) and the models are the documented exceptions.
"""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN_ROOT = Path(__file__).resolve().parents[1] / "src" / "equa" / "microsoft"
ALLOWED = {
    "repository.py",
    "history_repository.py",
    "models.py",
    "sync/recorder.py",
    "sync/lifecycle.py",
    # The tenant connections of multi-tenant mode keep their own repository beside their package.
    "tenants/repository.py",
    # The fleet engine's delta rounds and pending changes keep theirs beside the engine.
    "fleet/repository.py",
}
QUERY_BUILDERS = {"select", "insert", "update", "delete", "func", "text", "and_", "or_", "exists", "union"}
SESSION_QUERIES = {"execute", "scalar", "scalars", "stream", "stream_scalars"}


def _queries(source: str) -> list[str]:
    """What in `source` builds or runs SQL: query builders imported from SQLAlchemy, queries run on a session."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found += [f"imports {alias.name}" for alias in node.names if alias.name in QUERY_BUILDERS]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SESSION_QUERIES
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "session"
        ):
            found.append(f"line {node.lineno}: session.{node.func.attr}(...)")
    return found


def test_the_check_sees_a_query() -> None:
    source = (
        "from sqlalchemy import select\nasync def f(session):\n    return await session.scalar(select(1))\n"
    )
    assert _queries(source) == ["imports select", "line 3: session.scalar(...)"]


def test_services_and_routes_hold_no_sql() -> None:
    offenders = {}
    for path in sorted(DOMAIN_ROOT.rglob("*.py")):
        relative = path.relative_to(DOMAIN_ROOT).as_posix()
        if relative in ALLOWED:
            continue
        found = _queries(path.read_text(encoding="utf-8"))
        if found:
            offenders[relative] = found
    assert offenders == {}, f"SQL outside microsoft/repository.py: {offenders}"
