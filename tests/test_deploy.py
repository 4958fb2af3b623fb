"""deploy/: the systemd units start `equa` commands that exist, and systemd accepts them."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED_EQUA = "/opt/equa/.venv-prod/bin/equa"
EQUA = str(Path(sys.executable).with_name("equa"))


def exec_start(unit: Path) -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit)
    return shlex.split(parser["Service"]["ExecStart"])


def test_there_is_a_unit_for_each_process_kind() -> None:
    commands = {exec_start(unit)[1] for unit in UNITS}
    assert commands == {"serve", "worker", "scheduler"}


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_each_unit_runs_an_equa_command_that_exists_with_its_options(unit: Path) -> None:
    program, *arguments = exec_start(unit)
    assert program == INSTALLED_EQUA, "units run the production install made by `make install-prod`"
    # The options are parsed before --help answers, so an unknown command or option fails here.
    result = subprocess.run([EQUA, *arguments, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: equa " + arguments[0] in " ".join(result.stdout.split())


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the units are checked by the tests above only")
    names = []
    for unit in UNITS:
        text = unit.read_text().replace(INSTALLED_EQUA, EQUA)
        name = unit.name.replace("@.service", "@1.service")  # an instance of the template
        (tmp_path / name).write_text(text)
        names.append(name)
    result = subprocess.run(
        [analyze, "verify", *names],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "equa-" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_the_proxy_example_forwards_the_scheme_and_limits_bodies_like_the_app() -> None:
    conf = (DEPLOY / "nginx" / "equa.conf").read_text()
    for directive in (
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "client_max_body_size 1m;",
        "ssl_certificate ",
        "proxy_pass http://equa;",
    ):
        assert directive in conf
    serve = (DEPLOY / "systemd" / "equa-serve.service").read_text()
    assert "--host 127.0.0.1 --port 8000" in serve and "server 127.0.0.1:8000;" in conf


def test_the_sample_environment_names_only_settings_that_exist() -> None:
    from equa.settings import Settings

    known = {field.alias for field in Settings.model_fields.values()}
    names = set()
    for line in (DEPLOY / "equa.env").read_text().splitlines():
        line = line.strip().lstrip("#")
        if "=" in line and line.split("=", 1)[0].isupper() and " " not in line.split("=", 1)[0]:
            names.add(line.split("=", 1)[0])
    assert names and not names - known, f"unknown settings in deploy/equa.env: {names - known}"
