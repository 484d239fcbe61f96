"""``portscope compare`` and ``portscope local`` on saved files: outputs, languages, exit
codes and one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portscope.cli import main
from portscope.model import Comparison, Inventory, ListeningSocket, LocalAddress

NMAP = (Path(__file__).parents[1] / "data" / "local" / "nmap_sample.xml").read_text()

S = ListeningSocket.make


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    inv = Inventory(hostname="web1", taken=datetime.fromtimestamp(1700000000, UTC),
                    addresses=(LocalAddress("198.18.0.2", "eth0"),)).with_sockets([
        S("tcp", "0.0.0.0", 22), S("tcp", "0.0.0.0", 80), S("tcp", "0.0.0.0", 443),
        S("tcp", "127.0.0.1", 5432)])
    inv_file = tmp_path / "inv.json"
    inv_file.write_text(json.dumps(inv.to_dict()))
    scan_file = tmp_path / "scan.xml"
    scan_file.write_text(NMAP)
    return inv_file, scan_file


def test_compare_files_text_json_and_fail_on(files: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    inv, scan = files
    out_json = tmp_path / "cmp.json"
    code, out, err = run_cli(["compare", "--local", str(inv), "--scan", str(scan),
                              "--json", str(out_json)], capsys)
    assert code == 0, err
    c = Comparison.from_dict(json.loads(out_json.read_text()))
    got = {e.port: e.exposure.value for e in c.entries}
    # 443 is in nmap's <extraports state="closed"> without a port list
    assert got == {22: "exposed", 80: "shielded", 443: "closed-but-listed", 5432: "local-only"}
    assert "exposed" in out and "What to do:" in out
    code, out, _ = run_cli(["compare", "--local", str(inv), "--scan", str(scan), "--lang", "ja",
                            "--fail-on", "exposed"], capsys)
    assert code == 1 and "公開" in out and "対処" in out
    code, out, _ = run_cli(["compare", "--local", str(inv), "--scan", str(scan),
                            "--fail-on", "unexpected", "-oN", "-"], capsys)
    assert code == 0 and out.startswith("Listening sockets of web1")


def test_compare_reads_netstat_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "netstat.txt"
    listing.write_text("  TCP    0.0.0.0:22     0.0.0.0:0    LISTENING\n"
                       "  TCP    198.18.0.2:139 0.0.0.0:0    LISTENING\n")
    scan = tmp_path / "scan.xml"
    scan.write_text(NMAP)
    code, out, err = run_cli(["compare", "--local", str(listing), "--scan", str(scan),
                              "--json", "-"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert {(e["port"], e["class"]) for e in doc["entries"]} == {(22, "exposed"),
                                                                  (139, "closed-but-listed")}
    assert doc["entries"][0]["service"] == "ssh"


@pytest.mark.parametrize(("args", "code", "msg"), [
    (["compare", "--local", "/nonexistent.json", "--scan", "{scan}"], 66, "cannot read"),
    (["compare", "--local", "{bad}", "--scan", "{scan}"], 65, "no listening sockets"),
    (["compare", "--local", "{inv}", "--scan", "{bad}"], 65, "neither"),
    (["compare", "--local", "{inv}"], 64, "no outside view"),
    (["compare", "--local", "{inv}", "--scan", "{scan}", "198.18.0.2"], 64, "not both"),
    (["compare", "--local", "{inv}", "--netns", "x", "--scan", "{scan}"], 64, "not both"),
    (["compare", "--local", "{inv}", "--scan", "{scan}", "--fail-on", "bad"], 64,
     "not a class"),
    (["compare", "--local", "{inv}", "--scan", "{scan}", "--address", "198.18.0.77"], 64,
     "was not scanned"),
    (["local", "--netns", "../etc"], 64, "not a network namespace name"),
    (["local", "--netns", "portscope-no-such-ns"], 64, "no network namespace named"),
    (["compare", "--local", "{inv}", "--scan", "{scan}", "--json", "/nonexistent/x.json"], 73,
     "cannot write"),
])
def test_errors_are_one_line(args: list[str], code: int, msg: str, files: tuple[Path, Path],
                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv, scan = files
    bad = tmp_path / "bad.txt"
    bad.write_text("hello\n")
    argv = [a.format(inv=inv, scan=scan, bad=bad) for a in args]
    got, _, err = run_cli(argv, capsys)
    assert got == code, err
    assert err.startswith("portscope: error: ") and msg in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
