"""``portscope audit 127.0.0.1 --local``: this machine's sockets, taken now, against a scan
of a loopback port this test opened (only that port is probed)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def server() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


def test_audit_local_this_machine(server: int, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    proc = subprocess.run(
        [sys.executable, "-m", "portscope", "audit", "127.0.0.1", "-p", str(server),
         "--local", "--no-relay-test", "--report", str(out), "-q"],
        capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and proc.returncode == 0, proc.stderr
    assert "127.0.0.1 inside vs outside (--local (this machine)): " in proc.stdout
    (host,) = json.loads(out.read_text())["hosts"]
    cmp = host["extra"]["comparison"]
    mine = [e for e in cmp["entries"] if e["port"] == server and e["protocol"] == "tcp"]
    assert [e["class"] for e in mine] == ["exposed"]
    assert any(s["address"] == "127.0.0.1" for s in mine[0]["sockets"])
    assert not [f for f in host["findings"] if f["check"] == "compare.unexpected"]


def test_audit_local_refuses_other_hosts_before_scanning(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--local with a target that is not this machine fails at once (exit 64), before any
    probe: the scan is replaced by a tripwire."""
    import portscope.cli.audit as audit_cli
    from portscope.cli import main

    def tripwire(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scan started")

    monkeypatch.setattr(audit_cli, "execute", tripwire)
    out = tmp_path / "audit.html"
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "198.18.0.2", "198.18.0.3", "-p", "22", "--local",
              "--report", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 64, err
    assert err.startswith("portscope: error: --local (this machine): none of the targets "
                          "(198.18.0.2, 198.18.0.3) is an address of ")
    assert "--address ADDR" in err and len(err.splitlines()) == 1
    assert not out.exists()
