"""docs/architecture.md matches the code: every module it names exists, and every module of the Microsoft domain's
main packages is on its map, so a module added, moved or deleted without the map following fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOT = ROOT / "src"
DOC = ROOT / "docs" / "architecture.md"
# The packages the map lists module by module (graph/ and tenants/ are summed up in a line and an ellipsis).
MAPPED_PACKAGES = ("equa", "equa/microsoft", "equa/microsoft/groups", "equa/microsoft/sync")
# Paths the doc names that are not source modules.
NOT_SOURCE = {"tests/test_import_cycles.py", "tests/test_house_rules.py"}


def _named_modules(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w/.*-])((?:[a-z_]+/)*[a-z_]+\.py)\b", text)) - NOT_SOURCE


def _exists(named: str, sources: list[str]) -> bool:
    return any(source == named or source.endswith("/" + named) for source in sources)


def test_every_module_the_map_names_exists() -> None:
    sources = [path.relative_to(SOURCE_ROOT).as_posix() for path in SOURCE_ROOT.rglob("*.py")]
    missing = sorted(
        named for named in _named_modules(DOC.read_text(encoding="utf-8")) if not _exists(named, sources)
    )
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_module_of_the_mapped_packages_is_on_the_map() -> None:
    named = _named_modules(DOC.read_text(encoding="utf-8"))
    basenames = {name.rsplit("/", 1)[-1] for name in named}
    unmapped = sorted(
        path.relative_to(SOURCE_ROOT).as_posix()
        for package in MAPPED_PACKAGES
        for path in (SOURCE_ROOT / package).glob("*.py")
        if path.name != "__init__.py" and path.name not in basenames
    )
    assert unmapped == [], f"modules missing from docs/architecture.md's map: {unmapped}"


def test_the_check_reads_module_names_as_written() -> None:
    text = "│   │   ├── sync/policy.py, `db/session.release_connection`, grant_routes.py\n`equa/deps.py`"
    assert _named_modules(text) == {"sync/policy.py", "grant_routes.py", "equa/deps.py"}
