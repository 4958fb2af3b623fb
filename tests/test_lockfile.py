"""The lockfiles pin every dependency pyproject.toml names, and this environment was installed from them."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "requirements" / "runtime.txt"
DEV = ROOT / "requirements" / "dev.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def pins(lockfile: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lockfile.read_text().splitlines():
        if line.strip() and not line.startswith((" ", "#")):
            match = PIN.match(line)
            assert match, f"{lockfile.name}: not an exact pin: {line!r}"
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def declared() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    dev = [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    return runtime, dev


def test_every_declared_dependency_is_pinned_within_its_bounds() -> None:
    runtime, dev = declared()
    runtime_pins, dev_pins = pins(RUNTIME), pins(DEV)
    missing = []
    for requirement, lock in [*((r, runtime_pins) for r in runtime), *((r, dev_pins) for r in runtime + dev)]:
        name = canonicalize_name(requirement.name)
        if name not in lock:
            missing.append(name)
            continue
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            f"{name}=={lock[name]} is outside pyproject's {requirement.specifier}; run `make lock`"
        )
    assert not missing, f"not in the lockfiles (run `make lock`): {sorted(set(missing))}"
    # Test and development tools never reach a production install.
    assert not {"pytest", "ruff", "mypy", "playwright", "hypothesis", "schemathesis"} & set(runtime_pins)


def test_the_development_lock_installs_the_same_runtime_versions() -> None:
    runtime_pins, dev_pins = pins(RUNTIME), pins(DEV)
    differing = {
        name: (version, dev_pins.get(name))
        for name, version in runtime_pins.items()
        if dev_pins.get(name) != version
    }
    assert not differing, f"runtime.txt and dev.txt disagree (run `make lock`): {differing}"


def test_this_environment_was_installed_from_the_lockfile() -> None:
    """`make test` installs from requirements/dev.txt: what runs the tests is exactly what is pinned."""
    different = {}
    for name, version in pins(DEV).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            different[name] = (version, installed)
    assert not different, f"pinned vs installed (run `make install`): {different}"
