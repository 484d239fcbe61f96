"""Golden files: every output format of tests/data/report/sample_run.json.

Regenerate after an intended change with ``PORTSCOPE_UPDATE_GOLDEN=1 pytest -k golden`` and
review the diff. The portscope version is written ``@VERSION@`` in the golden files so a
release does not touch them.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from portscope import __version__
from portscope.model import ScanRun, expand_host
from portscope.report import FORMATS, render
from portscope.report.terminal import render_terminal

DATA = Path(__file__).resolve().parent.parent / "data" / "report"
UPDATE = os.environ.get("PORTSCOPE_UPDATE_GOLDEN") == "1"

SUFFIX = {"json": "json", "jsonl": "jsonl", "xml": "xml", "normal": "txt", "html": "html",
          "markdown": "md", "csv": "csv", "defectdojo": "dojo.json", "sarif": "sarif"}


def sample_run() -> ScanRun:
    run = ScanRun.from_dict(json.loads((DATA / "sample_run.json").read_text("utf-8")))
    return run.with_hosts(expand_host(h) for h in run.hosts)


def interrupted_run() -> ScanRun:
    run = sample_run()
    return replace(run, complete=False, finished=None, hosts=run.hosts[:1])


def check_golden(name: str, text: str) -> None:
    path = DATA / name
    normalized = text.replace(__version__, "@VERSION@")
    if UPDATE:
        path.write_text(normalized, encoding="utf-8", newline="")
    assert path.exists(), f"missing golden file {path}: run with PORTSCOPE_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert normalized == expected, f"{name} differs from its golden file"


def test_every_registered_format_has_a_golden_file() -> None:
    assert set(FORMATS) == set(SUFFIX)


@pytest.mark.parametrize("fmt", sorted(SUFFIX))
def test_golden_sample(fmt: str) -> None:
    check_golden(f"sample.{SUFFIX[fmt]}", render(fmt, sample_run()))


@pytest.mark.parametrize("fmt", ["xml", "normal", "jsonl"])
def test_golden_interrupted(fmt: str) -> None:
    check_golden(f"interrupted.{SUFFIX[fmt]}", render(fmt, interrupted_run()))


def test_golden_terminal() -> None:
    console = Console(record=True, width=100, color_system=None, force_terminal=False)
    console.print(render_terminal(sample_run()))
    text = "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
    check_golden("sample.terminal.txt", text)
