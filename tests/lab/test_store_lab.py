"""Issue 7's acceptance in the namespace lab: history and diff (SQLite and PostgreSQL),
nmap XML import and ndiff, watch with a webhook, kill -9 and --resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from portscope.model import PortState
from portscope.store import open_store, parse_query
from portscope.testing.lab import LabHost


def cli(*args: str, db: str, timeout: float = 300, check: int | None = 0
        ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PORTSCOPE_DB=db)
    proc = subprocess.run([sys.executable, "-m", "portscope", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr, proc.stderr
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "lab.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_diff_of_two_scans_and_history(lab_host: LabHost, db: str) -> None:
    host = lab_host.addr4
    keep = lab_host.listen_tcp([22, 443])
    closing = lab_host.listen_tcp([80])
    cli("scan", "-p", "1-1024,8080", host, db=db)
    closing.stop()
    opening = lab_host.listen_tcp([8080])
    try:
        cli("scan", "-p", "1-1024,8080", host, db=db)
        proc = cli("diff", "latest~1", "latest", "--json", db=db, check=1)
        doc = json.loads(proc.stdout)
        assert [(c["kind"], c["port"]) for c in doc["changes"]] == [
            ("port-closed", 80), ("port-opened", 8080)]
        text = cli("diff", "latest~1", "latest", db=db, check=1).stdout
        assert "+ 8080/tcp" in text and "- 80/tcp" in text and "2 change(s)" in text
        assert cli("diff", "latest", "latest", db=db, check=0).stdout.endswith(
            "no differences\n")
    finally:
        opening.stop()
        keep.stop()
    with open_store(db) as store:
        runs = store.runs()
        assert [r.status for r in runs] == ["complete", "complete"]
        assert [r.ports_stored for r in runs] == [1025, 1025]
        assert [r.open_ports for r in runs] == [3, 3]
        cur = {r.port: r for r in store.current(parse_query(f"host:{host}"))}
        assert len(cur) == 1025
        assert {p for p, r in cur.items() if r.state == "open"} == {22, 443, 8080}
        assert cur[80].state == "closed" and cur[80].state_since == cur[80].last_seen
        assert cur[22].first_seen < cur[22].last_seen  # seen open in both runs
        assert cur[22].state_since == cur[22].first_seen
        assert cur[8080].run_id == runs[0].id and cur[8080].first_seen < cur[8080].state_since
        hist = store.history(parse_query(f"port:80 host:{host}"))
        assert [r.state for r in hist] == ["open", "closed"]
    out = cli("query", "state:open", db=db).stdout
    assert "8080/tcp" in out and " 80/tcp" not in out


def test_nmap_xml_import_diff_and_ndiff(lab_host: LabHost, nmap_bin: str,
                                        tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite3")
    host = lab_host.addr4
    lab_host.listen_tcp([22, 80, 443, 993])
    lab_host.drop([25, 110])
    ports = "1-1024"
    nmap_xml = tmp_path / "nmap.xml"
    subprocess.run([nmap_bin, "-sT", "-Pn", "-n", "-p", ports, "-oX", str(nmap_xml), host],
                   check=True, capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    cli("scan", "-Pn", "-p", ports, host, db=db)
    imported = cli("import", str(nmap_xml), db=db).stdout
    assert "imported as run nmap-" in imported and "4 open" in imported
    again = cli("import", str(nmap_xml), db=db, check=None)
    assert again.returncode != 0 and "already in the store" in again.stderr
    nmap_id = imported.split("imported as run ")[1].split()[0]
    # the nmap run and portscope's own run of the same host agree
    proc = cli("diff", nmap_id, "latest~1", "--json", db=db, check=0)
    assert json.loads(proc.stdout)["changes"] == []
    cli("diff", str(nmap_xml), "latest~1", db=db, check=0)  # a file against a stored run
    # portscope's XML export is read by nmap's ndiff
    ours = tmp_path / "portscope.xml"
    cli("export", "latest~1", "-f", "xml", "-o", str(ours), db=db)
    ndiff = shutil.which("ndiff")
    if ndiff is None:
        pytest.fail("ndiff not installed (Debian package ndiff, scripts/debian-packages.txt)")
    same = subprocess.run([ndiff, str(nmap_xml), str(ours)], capture_output=True, text=True,
                          timeout=60)
    assert same.returncode == 0, same.stdout + same.stderr
    # and sees a change as one
    lab_host.listen_tcp([8443])
    cli("scan", "-Pn", "-p", "1-1024,8443", host, db=db)
    changed = tmp_path / "changed.xml"
    cli("export", "latest", "-f", "xml", "-o", str(changed), db=db)
    diff = subprocess.run([ndiff, str(ours), str(changed)], capture_output=True, text=True,
                          timeout=60)
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "+8443/tcp" in diff.stdout.replace(" ", "")
    # every registered format exports
    for fmt in ("json", "jsonl", "xml", "normal"):
        out = cli("export", "latest", "-f", fmt, db=db).stdout
        assert "8443" in out
    # a corrupt file: one line, exit 65
    bad = tmp_path / "bad.xml"
    bad.write_bytes(nmap_xml.read_bytes()[:500])
    proc = cli("import", str(bad), db=db, check=65)
    assert proc.stderr.count("\n") == 1 and str(bad) in proc.stderr


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _wait_runs(db: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open_store(db) as store:
            if len(store.runs(status="complete")) >= n:
                return
        time.sleep(0.2)
    raise AssertionError(f"watch did not complete {n} run(s) in {timeout}s")


@pytest.mark.slow
def test_watch_alerts_once_and_not_after_restart(lab_host: LabHost, tmp_path: Path,
                                                 receiver: ThreadingHTTPServer) -> None:
    db = str(tmp_path / "w.sqlite3")
    host = lab_host.addr4
    lab_host.listen_tcp([22])
    url = f"http://127.0.0.1:{receiver.server_address[1]}/alert"
    argv = [sys.executable, "-m", "portscope", "watch", "-p", "1-200,8080", host,
            "--every", "2s", "--alert", f"webhook:{url}", "--name", "lab"]
    env = dict(os.environ, PORTSCOPE_DB=db)
    watch = subprocess.Popen([*argv, "--count", "3"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        _wait_runs(db, 1)  # the baseline is stored
        lab_host.listen_tcp([8080])  # a port opens mid-way
        _out, err = watch.communicate(timeout=120)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0, err
    assert "Traceback" not in err
    got = receiver.received  # type: ignore[attr-defined]
    assert len(got) == 1, got
    assert (got[0]["trigger"], got[0]["address"], got[0]["port"]) == ("new_open_port", host,
                                                                      8080)
    # a restarted watch (same store, same name) sends nothing new
    proc = subprocess.run([*argv, "--count", "2"], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert len(receiver.received) == 1  # type: ignore[attr-defined]
    with open_store(db) as store:
        assert len(store.runs(watch="lab")) == 5
        (alert,) = store.alert_rows(watch="lab")
        assert alert["status"] == "sent"


RATE = 5000  # probes per second: a steady stream of results to kill in the middle of


@pytest.mark.slow
def test_kill9_keeps_results_and_resume_completes(lab_host: LabHost, tmp_path: Path) -> None:
    db = str(tmp_path / "k.sqlite3")
    host = lab_host.addr4
    open_ports = [22, 80, 443, 3306, 8080, 20000, 40000, 65535]
    lab_host.listen_tcp(open_ports)
    lab_host.drop_range(1000, 1999)  # these time out as filtered
    jsonl = tmp_path / "witness.jsonl"
    env = dict(os.environ, PORTSCOPE_DB=db)
    proc = subprocess.Popen([sys.executable, "-m", "portscope", "scan", "-p-", "-T4",
                             "--max-retries", "0", "--max-rate", str(RATE), host,
                             "--jsonl", str(jsonl)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        stored = 0
        while time.monotonic() < deadline and proc.poll() is None:
            with open_store(db) as store:
                runs = store.runs()
                stored = runs[0].ports_stored if runs else 0
            if stored >= 8000:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the scan ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with open_store(db) as store:
        (summary,) = store.runs()
        assert summary.status == "incomplete" and summary.resumable
        run_id = summary.id
        decided = store.decided(run_id)
        partial = store.load_run(run_id)
    assert not partial.complete
    # Everything the process had written to its JSON Lines witness (flushed per result)
    # is in the store, but for the last fraction of a second: at RATE results/s, the
    # commit interval (0.2 s) plus one commit in progress.
    witnessed = {(e["address"], e["protocol"], e["port"]) for e in
                 (json.loads(line) for line in jsonl.read_text().splitlines()
                  if line.endswith("}"))
                 if e.get("type") == "port"}
    missing = witnessed - decided
    assert len(decided) >= 8000
    # (the store may hold the one or two results whose witness line the kill cut off)
    assert len(decided - witnessed) <= 2
    assert len(missing) <= RATE * 0.6, f"{len(missing)} results lost"
    # resume: the same options, only the probes not decided yet
    lab_host.flush_rules()
    res = cli("scan", "--resume", run_id, "--json", str(tmp_path / "final.json"), db=db)
    assert "Traceback" not in res.stderr
    with open_store(db) as store:
        (summary,) = store.runs()
        assert summary.id == run_id and summary.status == "complete"
        final = store.load_run(run_id)
    (h,) = final.hosts
    assert len(h.ports) == 65535
    assert sorted(p.port for p in h.ports if p.state is PortState.OPEN) == open_ports
    # what was found before the kill was kept, not scanned again: dropped ports decided
    # then stay filtered although the rules are gone now, and the rest came out closed
    states = {p.port: p.state for p in h.ports}
    before = [k[2] for k in decided if 1000 <= k[2] <= 1999]
    assert before and all(states[n] is PortState.FILTERED for n in before)
    after = [n for n in range(1000, 2000) if (host, "tcp", n) not in decided]
    assert after and all(states[n] is PortState.CLOSED for n in after)
    assert final.extra.get("resumed")
    assert json.loads((tmp_path / "final.json").read_text())["run"]["id"] == run_id
