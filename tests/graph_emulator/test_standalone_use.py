"""The emulator as another project uses it: the installed `graph-emulator` script, the pytest plugin in a project
of its own (running the example of docs/graph-emulator.md as written), and a package that needs nothing of Equa."""

from __future__ import annotations

import ast
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graph_emulator.testing import EmulatorControl

PROJECT = Path(__file__).resolve().parents[2]
PACKAGE = PROJECT / "src" / "graph_emulator"
GUIDE = PROJECT / "docs" / "graph-emulator.md"
GUIDE_SECTION = "## Testing your own Microsoft Graph code offline"


def python_examples(section: str) -> list[str]:
    """The ```python blocks of one section of the guide, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    assert section in text, f"{GUIDE} has no section {section!r}"
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def outside_environment() -> dict[str, str]:
    """The environment of a project that is not this one: no pytest options or Equa settings carried over."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "EQUA_", "MS_"))}


# ---- graph_emulator stands alone ------------------------------------------------------------------------


def test_the_package_imports_nothing_of_equa():
    for module in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                assert name.split(".")[0] != "equa", f"{module.name} imports {name}"
    # And at run time: the plugin, the helpers and the command line load without the service.
    probe = (
        "import sys, graph_emulator.pytest_plugin, graph_emulator.testing, graph_emulator.cli; "
        "print(sorted(m for m in sys.modules if m == 'equa' or m.startswith('equa.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert loaded.stdout.strip() == "[]"


# ---- the console script ---------------------------------------------------------------------------------


def test_the_installed_console_script_serves_a_lagging_tenant(tmp_path):
    script = Path(sys.executable).with_name("graph-emulator")
    assert script.is_file(), f"pyproject's [project.scripts] does not install {script.name}"
    stderr_file = tmp_path / "stderr.txt"
    with stderr_file.open("w") as stderr:
        process = subprocess.Popen(
            [str(script), "--data-dir", str(tmp_path / "data"), "--no-throttling"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=outside_environment(),
            cwd=tmp_path,
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        base_url = process.stdout.readline().strip() if ready else ""
        assert base_url.startswith("https://127.0.0.1:"), stderr_file.read_text()
        ca_path = tmp_path / "data" / "ca.pem"
        deadline = time.monotonic() + 10
        while f"CA certificate: {ca_path}" not in stderr_file.read_text():
            assert time.monotonic() < deadline, stderr_file.read_text()
            time.sleep(0.05)
        control = EmulatorControl(base_url, ca_path)
        try:
            assert control.health() == {"status": "ok"}
            # Graph's eventual consistency is the default profile of the command line too.
            assert control.consistency()["lag_seconds"] == 1.0
        finally:
            control.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_the_console_script_documents_its_options():
    script = Path(sys.executable).with_name("graph-emulator")
    shown = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for option in ("--data-dir", "--seed", "--lag", "--time-scale", "--faults", "--no-throttling"):
        assert option in shown, option


# ---- the pytest plugin in a project of its own ----------------------------------------------------------


def test_the_guides_msal_and_httpx_example_passes_in_another_project(tmp_path):
    example = next(block for block in python_examples(GUIDE_SECTION) if "import msal" in block)
    project = tmp_path / "elsewhere"
    project.mkdir()
    (project / "test_example.py").write_text(example, encoding="utf-8")
    # No conftest and no configuration file: only `-p graph_emulator.pytest_plugin`, as the guide says.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "graph_emulator.pytest_plugin", "-p", "no:cacheprovider",
         "-p", "no:randomly", "test_example.py"],
        capture_output=True, text=True, timeout=240, cwd=project, env=outside_environment(), check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b1 passed\b", run.stdout), run.stdout
    assert f"rootdir: {project}" in run.stdout, "the example ran inside this repository's configuration"


@pytest.mark.parametrize("block", ["import msal", "GraphServiceClient"])
def test_the_guide_has_both_examples(block):
    assert any(block in example for example in python_examples(GUIDE_SECTION)), block
