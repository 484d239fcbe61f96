"""The store's subcommands end to end on 127.0.0.1 ports this test opens (and ports it
bound and released, known closed), with the default SQLite store of the test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from portscope.model import Finding, Protocol, ScanRun, Severity
from portscope.store import default_path, open_store

DATA = Path(__file__).parent.parent / "data"


def cli(*args: str, check: int | None = 0, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "portscope", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=env or dict(os.environ))
    assert "Traceback" not in proc.stderr, proc.stderr
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def ports() -> Iterator[tuple[list[int], list[int]]]:
    """(listening ports, closed ports) on 127.0.0.1."""
    listening = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        listening.append(s)
    holders = []
    for _ in range(5):
        h = socket.socket()
        h.bind(("127.0.0.1", 0))
        holders.append(h)
    closed = [h.getsockname()[1] for h in holders]
    for h in holders:
        h.close()
    yield [s.getsockname()[1] for s in listening], closed
    for s in listening:
        s.close()


def spec(nums: list[int]) -> str:
    return ",".join(str(n) for n in sorted(nums))


def test_scan_stores_by_default_and_the_history_commands(
        ports: tuple[list[int], list[int]], tmp_path: Path) -> None:
    opened, closed = ports
    cli("scan", "-p", spec(opened + closed), "127.0.0.1")
    assert default_path().exists()
    assert str(default_path()).startswith(os.environ["XDG_DATA_HOME"])
    cli("scan", "-p", spec(opened + closed), "127.0.0.1", "--no-store")
    runs = json.loads(cli("runs", "--json").stdout)
    assert len(runs) == 1 and runs[0]["status"] == "complete"
    assert runs[0]["open_ports"] == 3 and runs[0]["ports_stored"] == 8
    assert "complete" in cli("runs").stdout
    shown = cli("show", "latest").stdout
    assert all(f"{p}/tcp" in shown for p in opened)
    rows = [json.loads(x) for x in cli("query", "state:open", "--json").stdout.splitlines()]
    assert sorted(r["port"] for r in rows) == sorted(opened)
    assert cli("query", "port:1", check=0).stderr.strip() == "no matching ports"
    from portscope.report import FORMATS

    for fmt in FORMATS:  # every registered output format
        out = tmp_path / f"run.{fmt}"
        cli("export", "latest", "-f", fmt, "-o", str(out))
        assert out.stat().st_size > 0
        if fmt in ("json", "jsonl", "xml", "normal"):
            assert str(opened[0]) in out.read_text()
    # the exported JSON diffs cleanly against the stored run; diff exit codes
    assert cli("diff", str(tmp_path / "run.json"), "latest", check=0).stdout.endswith(
        "no differences\n")
    assert cli("diff", str(tmp_path / "run.xml"), "latest", check=0)
    missing = cli("diff", "latest", "no-such-run", check=2)
    assert missing.stderr.startswith("portscope: error: no run 'no-such-run'")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema_version": 1, "run": {"id": 5}}')
    assert cli("diff", str(corrupt), "latest", check=2).stderr.count("\n") == 1
    info = cli("db", "info").stdout
    assert "schema:   0002" in info and "runs:     1" in info
    assert "up to date" in cli("db", "upgrade").stdout


def test_diff_of_two_stored_runs(ports: tuple[list[int], list[int]]) -> None:
    opened, closed = ports
    cli("scan", "-p", spec(opened + closed), "127.0.0.1")
    # one of the closed ports starts listening
    with open_store() as store:
        first = store.load_run("latest")
    new = socket.socket()
    try:
        new.bind(("127.0.0.1", closed[0]))
    except OSError:
        pytest.skip("the closed port was taken meanwhile")
    new.listen(4)
    try:
        cli("scan", "-p", spec(opened + closed), "127.0.0.1")
        doc = json.loads(cli("diff", first.id, "latest", "--json", check=1).stdout)
        assert [(c["kind"], c["port"]) for c in doc["changes"]] == [("port-opened", closed[0])]
        text = cli("diff", "latest~1", "latest", check=1).stdout
        assert f"+ {closed[0]}/tcp" in text
    finally:
        new.close()


def test_import_formats_and_errors(tmp_path: Path) -> None:
    out = cli("import", str(DATA / "nmap-connect.xml"), str(DATA / "masscan.list")).stdout
    assert "(xml: 1 host(s), 101 port(s), 3 open)" in out
    assert "(masscan-list: 1 host(s), 3 port(s), 3 open)" in out
    again = cli("import", str(DATA / "nmap-connect.xml"), check=None)
    assert again.returncode != 0 and "--replace" in again.stderr
    cli("import", "--replace", str(DATA / "nmap-connect.xml"))
    runs = json.loads(cli("runs", "--json").stdout)
    assert sorted(r["source"] for r in runs) == ["import:masscan-list", "import:xml"]
    # masscan lists no closed ports and no scope: nothing counts as closed
    proc = cli("diff", str(DATA / "masscan.list"), str(DATA / "nmap-connect.xml"), "--json",
               check=0)
    assert json.loads(proc.stdout)["changes"] == []
    bad = tmp_path / "scan.xml"
    bad.write_text("<?xml version='1.0'?><nmaprun><host><address addr='x'")
    err = cli("import", str(bad), check=65).stderr
    assert err.startswith(f"portscope: error: {bad}:") and err.count("\n") == 1
    other = tmp_path / "notes.txt"
    other.write_text("just some text\n")
    assert "unrecognised format" in cli("import", str(other), check=65).stderr
    assert cli("import", str(tmp_path / "missing.xml"), check=66)


def test_store_errors_and_resume_refusals(ports: tuple[list[int], list[int]],
                                          tmp_path: Path) -> None:
    opened, _ = ports
    cli("scan", "-p", spec(opened), "127.0.0.1")
    assert "is complete: nothing to resume" in cli("scan", "--resume", "latest",
                                                   check=64).stderr
    assert "give no targets" in cli("scan", "--resume", "latest", "127.0.0.1",
                                    check=64).stderr
    # an explicit store that cannot be opened fails; the default one only warns
    blocker = tmp_path / "file"
    blocker.write_text("")
    err = cli("scan", "-p", spec(opened), "127.0.0.1", "--db", str(blocker / "x.sqlite3"),
              check=69).stderr
    assert err.startswith("portscope: error: ") and err.count("\n") == 1
    env = dict(os.environ, XDG_DATA_HOME=str(blocker))
    proc = cli("scan", "-p", spec(opened), "127.0.0.1", env=env, check=0)
    assert "warning: results not stored" in proc.stderr
    assert "unsupported database URL" in cli("runs", "--db", "mysql://x/y", check=64).stderr


def test_watch_cli_with_audit_and_command_alert(
        ports: tuple[list[int], list[int]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``watch --audit`` wiring, in-process with a fake audit (portscope.checks is the
    audit engineer's): a new HIGH finding on the second run is alerted once."""
    from portscope.cli import cli as group
    from portscope.cli import watch as watch_cli

    opened, _ = ports
    calls: list[str] = []

    def fake_load_audit(config_file: str | None = None) -> object:
        def audit(run: ScanRun) -> ScanRun:
            calls.append(run.id)
            if len(calls) < 2:
                return replace(run, extra={**run.extra, "audited": True})
            f = Finding("fake:1", "fake-check", Severity.HIGH, "a test", "Fake problem",
                        port=opened[0], protocol=Protocol.TCP)
            hosts = tuple(replace(h, findings=(f,)) for h in run.hosts)
            return replace(run, hosts=hosts, extra={**run.extra, "audited": True})
        return audit

    monkeypatch.setattr(watch_cli, "load_audit", fake_load_audit)
    out = tmp_path / "alerts.jsonl"
    script = f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')"
    db = str(tmp_path / "w.sqlite3")
    args = ["watch", "-p", spec(opened), "127.0.0.1", "--every", "1s", "--audit", "--db", db,
            "--alert", f"command:{sys.executable} -c {json.dumps(script)}", "--count", "3"]
    group.main(args=args, prog_name="portscope", standalone_mode=False)
    assert len(calls) == 3
    alerts = [json.loads(line) for line in out.read_text().splitlines() if line]
    assert [(a["trigger"], a["check"], a["port"]) for a in alerts] == [
        ("new_finding", "fake-check", opened[0])]
    with open_store(db) as store:
        runs = store.runs(watch="127.0.0.1")
        assert len(runs) == 3 and {r.source for r in runs} == {"watch"}
        assert store.load_run("latest").hosts[0].findings[0].check == "fake-check"
