"""The registry, ``render`` and ``open_output``: files, standard output, errors, and the
Ctrl-C path (finish with complete=False, then close)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from portscope.errors import EXIT_CANTCREAT, OutputFileError, UsageError
from portscope.model import Host, HostStatus, PortResult, PortState, Protocol, ScanRun
from portscope.report import FORMATS, Output, open_output, output_class, read_jsonl, render
from portscope.report.base import Output as BaseOutput
from portscope.report.normal import NormalOutput

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
HOST = Host(address="192.0.2.1", status=HostStatus.UP, reason="syn-ack",
            ports=(PortResult(22, Protocol.TCP, PortState.OPEN, "syn-ack"),))
RUN = ScanRun(id="r", started=T0, finished=T0, command="portscope scan 192.0.2.1",
              scan_types=("connect",), hosts=(HOST,))


def drive(out: Output, run: ScanRun = RUN) -> None:
    out.start(run)
    for h in run.hosts:
        for p in h.ports:
            out.port(h.address, p)
        out.host(h)
    out.finish(run)


def test_registry() -> None:
    assert sorted(FORMATS) == ["csv", "defectdojo", "html", "json", "jsonl", "markdown",
                               "normal", "sarif", "xml"]
    for name, cls in FORMATS.items():
        assert cls.name == name
        assert issubclass(cls, BaseOutput)
    assert FORMATS["jsonl"].streaming is True
    assert not any(FORMATS[f].streaming for f in ("json", "xml", "normal"))


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"unknown output format 'yaml' \(choose from: csv, "
                                         r"defectdojo, html, json, jsonl, markdown, normal, "
                                         r"sarif, xml\)"):
        render("yaml", RUN)
    with pytest.raises(UsageError):
        open_output("yaml", "-")
    assert output_class("xml") is FORMATS["xml"]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_file_output_equals_render(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"out.{fmt}"
    with open_output(fmt, str(path)) as out:
        drive(out)
    text = path.read_text(encoding="utf-8")
    if fmt == "jsonl":  # the live stream also has the port events
        assert read_jsonl(text.splitlines()) == read_jsonl(render(fmt, RUN).splitlines())
        assert '"type":"port"' in text
    else:
        assert text == render(fmt, RUN)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("fmt", ["json", "xml", "normal"])
def test_document_replaces_the_old_file_only_when_finished(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "scan.out"
    path.write_text("previous results\n")
    os.chmod(path, 0o640)
    out = open_output(fmt, str(path))
    out.start(RUN)
    out.host(HOST)
    assert path.read_text() == "previous results\n"  # untouched while the scan runs
    out.close()  # the scan crashed: finish was never called
    assert path.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scan.out"]

    with open_output(fmt, str(path)) as out:
        drive(out)
    assert path.read_text(encoding="utf-8") == render(fmt, RUN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the file's mode is kept


def test_ctrl_c_still_produces_a_valid_file(tmp_path: Path) -> None:
    outputs = {fmt: open_output(fmt, str(tmp_path / f"scan.{fmt}")) for fmt in FORMATS}
    interrupted = replace(RUN, complete=False, finished=None)
    try:
        for out in outputs.values():
            out.start(RUN)
            out.port(HOST.address, HOST.ports[0])
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        for out in outputs.values():
            out.finish(interrupted)
    finally:
        for out in outputs.values():
            out.close()
    doc = json.loads((tmp_path / "scan.json").read_text())
    assert doc["run"]["complete"] is False
    assert read_jsonl((tmp_path / "scan.jsonl").read_text().splitlines()).complete is False
    assert 'exit="error"' in (tmp_path / "scan.xml").read_text()
    assert "interrupted" in (tmp_path / "scan.normal").read_text()


def test_streaming_file_is_written_in_place_and_flushed(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    out = open_output("jsonl", str(path))
    out.start(RUN)
    out.port(HOST.address, HOST.ports[0])
    # readable by another process now (tail -f), before close
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["run", "port"]
    out.close()  # crash before finish: what was written stays
    assert read_jsonl(path.read_text().splitlines()).complete is False


def test_a_failing_finish_never_replaces_the_file(tmp_path: Path) -> None:
    class Broken(BaseOutput):
        name: ClassVar[str] = "broken"

        def finish(self, run: ScanRun) -> None:
            self.write("half a docu")
            raise RuntimeError("bug")

    path = tmp_path / "x"
    path.write_text("old\n")
    broken = Broken(io.StringIO())
    with pytest.raises(RuntimeError):
        broken.finish(RUN)
    assert broken.finished is False

    # the same through open_output (patched registry entry)
    FORMATS["broken"] = Broken
    try:
        out = open_output("broken", str(path))
        with pytest.raises(RuntimeError), out:
            out.finish(RUN)
    finally:
        del FORMATS["broken"]
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_subclass_overriding_finish_is_tracked() -> None:
    class Child(NormalOutput):
        def finish(self, run: ScanRun) -> None:
            super().finish(run)
            raise ValueError("after super")

    out = Child(io.StringIO())
    with pytest.raises(ValueError, match="after super"):
        out.finish(RUN)
    assert out.finished is False


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "missing-dir" / "x.xml", "No such file or directory (ENOENT)"),
    (lambda p: p, "Is a directory (EISDIR)"),
])
@pytest.mark.parametrize("fmt", ["xml", "jsonl"])
def test_unwritable_paths_fail_at_open_with_one_line(make, message: str, fmt: str,  # type: ignore[no-untyped-def]
                                                     tmp_path: Path) -> None:
    path = make(tmp_path)
    with pytest.raises(OutputFileError) as info:
        open_output(fmt, str(path))
    assert str(info.value) == f"cannot write {path}: {message}"
    assert "\n" not in str(info.value)
    assert info.value.exit_code == EXIT_CANTCREAT


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_directory(tmp_path: Path) -> None:  # pragma: no cover - non-root only
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputFileError, match="Permission denied"):
            open_output("xml", str(ro / "x.xml"))
    finally:
        ro.chmod(0o700)


def test_existing_writable_file_in_a_directory_without_create_rights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "scan.xml"
    path.write_text("old")
    real_open = open

    def deny_temp(file: str, mode: str = "r", *args: object, **kw: object) -> object:
        if mode == "x":
            raise PermissionError(13, "Permission denied", file)
        return real_open(file, mode, *args, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", deny_temp)
    with open_output("xml", str(path)) as out:
        drive(out)
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == render("xml", RUN)


def test_a_name_too_long_for_the_temporary_file_is_written_in_place(tmp_path: Path) -> None:
    path = tmp_path / ("n" * 250)  # fits NAME_MAX (255), ".<name>.<hex>.tmp" does not
    with open_output("xml", str(path)) as out:
        drive(out)
    assert path.read_text(encoding="utf-8") == render("xml", RUN)


def test_write_errors_become_output_file_errors(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    out = open_output("xml", "/dev/full")  # a device: written in place
    out.start(RUN)
    with pytest.raises(OutputFileError, match=r"^cannot write /dev/full: No space left on "
                                              r"device \(ENOSPC\)$"):
        out.finish(RUN)
    assert out.finished is False
    with pytest.raises(OutputFileError):
        out.close()  # the buffered data still cannot be written
    out.close()  # idempotent


def test_symlink_target_is_replaced_not_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with open_output("json", str(link)) as out:
        drive(out)
    assert link.is_symlink()
    assert json.loads(real.read_text())["run"]["id"] == "r"


def test_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with open_output("normal", "-") as out:
        drive(out)
    assert out.stream is sys.stdout
    assert capsys.readouterr().out == render("normal", RUN)
    assert not sys.stdout.closed


def test_a_caller_stream_is_flushed_but_not_closed() -> None:
    buf = io.StringIO()
    with FORMATS["xml"](buf) as out:
        drive(out)
    assert not buf.closed
    assert buf.getvalue() == render("xml", RUN)
