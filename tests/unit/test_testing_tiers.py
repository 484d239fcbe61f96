"""The tier policy of tests/conftest.py, run in an inner pytest: an unavailable lab tier is
skipped locally, but fails under CI=true, also when it was deselected or never collected."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

PYPROJECT = """
[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-ra --strict-markers -p no:cacheprovider"
markers = ["lab: lab", "postgres: pg", "slow: slow"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    tests = tmp_path / "tests"
    (tests / "lab").mkdir(parents=True)
    (tests / "unit").mkdir()
    shutil.copy(CONFTEST, tests / "conftest.py")
    (tests / "unit" / "test_plain.py").write_text("def test_plain():\n    pass\n")
    (tests / "lab" / "test_needs_lab.py").write_text(
        "def test_host(lab_host):\n    assert lab_host.addr4\n"
    )
    return tmp_path


def _pytest(project: Path, *args: str, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PORTSCOPE_LAB_DISABLE"] = "unit test of the tier policy"
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_unavailable_lab_is_skipped_outside_ci(project: Path) -> None:
    proc = _pytest(project, ci=False)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 1 skipped" in proc.stdout
    assert "lab tier unavailable: disabled by PORTSCOPE_LAB_DISABLE" in proc.stdout


def test_unavailable_lab_fails_under_ci(project: Path) -> None:
    proc = _pytest(project, ci=True)
    assert proc.returncode == 1, proc.stdout
    assert "lab tier cannot run under CI=true" in proc.stdout
    assert "TIER FAILURE: CI=true but no lab test ran" in proc.stdout


def test_deselecting_the_lab_fails_under_ci(project: Path) -> None:
    proc = _pytest(project, "-m", "not lab", ci=True)
    assert proc.returncode == 1, proc.stdout
    assert "1 passed, 1 deselected" in proc.stdout
    assert "TIER FAILURE: CI=true but no lab test ran (0 selected, 1 deselected)" in proc.stdout


def test_full_run_without_lab_tests_fails_under_ci(project: Path) -> None:
    (project / "tests" / "lab" / "test_needs_lab.py").unlink()
    assert _pytest(project, ci=True).returncode == 1
    # a partial run that never collected the lab tier is fine
    assert _pytest(project, "tests/unit", ci=True).returncode == 0
