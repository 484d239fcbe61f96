"""The scan command as a user meets it: bad input gives one line and a documented exit
code; a scan of a listener this test opened prints the table and writes every output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from portscope.errors import (
    EXIT_CANTCREAT,
    EXIT_NOHOST,
    EXIT_NOINPUT,
    EXIT_USAGE,
)


def cli(*args: str, stdin: str | None = None,
        allow: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if allow is not None:
        env["PORTSCOPE_SAFETY_ALLOW"] = allow
    return subprocess.run([sys.executable, "-m", "portscope", *args], capture_output=True,
                          text=True, input=stdin, timeout=120, env=env)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("portscope: error: ")
    assert text in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("args", "code", "text"), [
    (["scan", "198.18.0.300"], EXIT_USAGE, "198.18.0.300"),
    (["scan", "198.18.0.0/40"], EXIT_USAGE, "prefix"),
    (["scan", "-p", "70000", "198.18.0.2"], EXIT_USAGE, "out of range"),
    (["scan", "-p", "nosuchservice", "198.18.0.2"], EXIT_USAGE, "unknown service name"),
    (["scan", "-p", "9-3", "198.18.0.2"], EXIT_USAGE, "start after end"),
    (["scan", "-T9", "198.18.0.2"], EXIT_USAGE, "-T0 .. -T5"),
    (["scan", "-sZ", "198.18.0.2"], EXIT_USAGE, "unknown scan type -sZ"),
    (["scan", "--top-ports", "0", "198.18.0.2"], EXIT_USAGE, "positive"),
    (["scan", "--shard", "3/2", "198.18.0.2"], EXIT_USAGE, "--shard"),
    (["scan", "--max-rate", "-5", "198.18.0.2"], EXIT_USAGE, "--max-rate"),
    (["scan"], EXIT_USAGE, "no targets given"),
    (["scan", "-iL", "/nonexistent/targets.txt"], EXIT_NOINPUT, "/nonexistent/targets.txt"),
    (["scan", "-p", "U:53", "198.18.0.2"], EXIT_USAGE, "-sU"),
    (["scan", "no-such-host.invalid"], EXIT_NOHOST, "no-such-host.invalid"),
    (["scan", "--frobnicate", "198.18.0.2"], EXIT_USAGE, "--frobnicate"),
    (["scan", "-p", "22", "198.18.0.2", "--json", "/nonexistent/dir/out.json"],
     EXIT_CANTCREAT, "/nonexistent/dir/out.json"),
])
def test_bad_input_is_one_line_and_an_exit_code(args: list[str], code: int, text: str) -> None:
    # 198.18.0.2 is fenced off: if a bug let the scan start, it would be refused (exit 64
    # with another message) before a single packet is sent.
    one_line_error(cli(*args, allow="127.0.0.1/32"), code, text)


def test_safety_allowlist_refuses_before_sending() -> None:
    one_line_error(cli("scan", "-p", "80", "198.18.0.2", allow="127.0.0.1/32"), EXIT_USAGE,
                   "outside PORTSCOPE_SAFETY_ALLOW")


def test_binary_target_file(tmp_path: Path) -> None:
    f = tmp_path / "t.bin"
    f.write_bytes(b"\xff\xfe\x00garbage")
    one_line_error(cli("scan", "-iL", str(f)), EXIT_NOINPUT, "not a text file")


def test_help_and_version() -> None:
    proc = cli("scan", "--help")
    assert proc.returncode == 0
    assert "-p PORTS" in proc.stdout
    assert "--top-ports" in proc.stdout
    assert cli("--version").stdout.startswith("portscope")


@pytest.fixture
def two_ports() -> Iterator[tuple[int, int]]:
    """One port with a listener, one bound and released (closed)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    closed = spare.getsockname()[1]
    spare.close()
    yield listener.getsockname()[1], closed
    listener.close()


def test_scan_prints_table_and_writes_outputs(two_ports: tuple[int, int], tmp_path: Path) -> None:
    open_port, closed_port = two_ports
    out = {k: tmp_path / f"o.{k}" for k in ("json", "jsonl", "xml", "txt")}
    proc = cli("scan", "-p", f"{open_port},{closed_port}", "127.0.0.1",
               "--json", str(out["json"]), "--jsonl", str(out["jsonl"]),
               "-oX", str(out["xml"]), "-oN", str(out["txt"]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar on a pipe
    assert f"{open_port}/tcp" in proc.stdout
    assert "open" in proc.stdout
    doc = json.loads(out["json"].read_text())
    ports = {p["port"]: p for p in doc["hosts"][0]["ports"]}
    assert ports[open_port]["state"] == "open"
    assert ports[closed_port]["state"] == "closed"
    assert ports[closed_port]["reason"] == "conn-refused"
    assert doc["run"]["ports_spec"] == "T:" + ",".join(
        str(p) for p in sorted((open_port, closed_port)))
    assert out["xml"].read_text().count("<port ") == 2
    assert f"{open_port}/tcp" in out["txt"].read_text()


def test_json_to_stdout_is_pure_json(two_ports: tuple[int, int]) -> None:
    open_port, _ = two_ports
    proc = cli("scan", "-p", str(open_port), "127.0.0.1", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["hosts"][0]["ports"][0]["port"] == open_port
