"""Vendored browser code is exactly what its table in web/static/vendor/README.md says: the file the page loads is
listed there with its pinned version, licence file and sha256, and its bytes still have that sha256."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import equa.web

WEB = Path(equa.web.__file__).resolve().parent
VENDOR = WEB / "static" / "vendor"
ROW = re.compile(
    r"^\| `(?P<file>[^`]+)` \| `(?P<package>[^`]+)` \| (?P<version>[\d.]+) .*? \(`(?P<licence>[^`]+)`\) .*sha256 `(?P<sha>[0-9a-f]{64})`"
)


def _table() -> dict[str, dict[str, str]]:
    rows = {}
    for line in (VENDOR / "README.md").read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows[match["file"]] = match.groupdict()
    return rows


def test_every_vendored_file_is_listed_with_its_licence_and_unchanged_bytes() -> None:
    table = _table()
    shipped = {path.name for path in VENDOR.iterdir() if path.suffix == ".js"}
    assert shipped and set(table) == shipped
    for name, row in table.items():
        assert row["version"] in name, f"{name}: the file name carries its pinned version"
        assert (VENDOR / row["licence"]).read_text(encoding="utf-8").strip()
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == row["sha"], f"{name} was changed"


def test_the_page_loads_the_listed_htmx() -> None:
    loaded = set()
    for template in (WEB / "templates").rglob("*.html"):
        loaded |= set(re.findall(r"static_url\('vendor/([^']+)'\)", template.read_text(encoding="utf-8")))
    assert loaded and loaded <= set(_table())
    assert any(_table()[name]["package"] == "htmx.org" for name in loaded)
